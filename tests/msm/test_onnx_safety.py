from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mlife_shared.errors import Unprocessable
from mlife_shared.onnx_safety import InvalidOnnxModel, inspect_onnx
from tests.msm.onnx_models import classifier, identity_classifier, write


class _Exploit:
    """Unpickling this would create a sentinel file: proof that the pickle was executed."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (os.makedirs, (str(self.sentinel),))


def test_describes_a_valid_model(tmp_path: Path) -> None:
    path = write(tmp_path / "m.onnx", identity_classifier(4))
    info = inspect_onnx(path)
    assert [(t.name, t.shape, t.dtype) for t in info.inputs] == [("x", ["N", 4], "float32")]
    assert [(t.name, t.shape, t.dtype) for t in info.outputs] == [("probs", ["N", 4], "float32")]
    assert info.opset == 17 and info.ir_version == 8 and info.size == path.stat().st_size
    assert info.as_dict()["inputs"][0]["name"] == "x"


def test_the_declared_preprocessing_is_part_of_the_description(tmp_path: Path) -> None:
    """A client of a table model learns the column order from the version's signature (issue 12)."""
    import onnx

    model = onnx.load_from_string(identity_classifier(2))
    meta = model.metadata_props.add()
    meta.key, meta.value = "mlife.preprocess", '{"kind": "table", "columns": ["b", "a"]}'
    for i in range(60):  # bounded: a model cannot fill the registry's row with metadata
        extra = model.metadata_props.add()
        extra.key, extra.value = f"k{i}", "v" * 30_000
    info = inspect_onnx(write(tmp_path / "m.onnx", model.SerializeToString()))
    assert info.as_dict()["metadata"]["mlife.preprocess"] == '{"kind": "table", "columns": ["b", "a"]}'
    assert len(info.metadata) == 50 and max(len(v) for v in info.metadata.values()) == 20_000


def test_pickle_renamed_onnx_is_rejected_without_executing(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    for protocol in (0, 2, 4, 5):
        path = write(tmp_path / f"evil{protocol}.onnx", pickle.dumps(_Exploit(sentinel), protocol=protocol))
        with pytest.raises(InvalidOnnxModel):
            inspect_onnx(path)
        assert not sentinel.exists()


def test_garbage_and_empty_files_are_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cases = {"random": rng.bytes(4096), "empty": b"", "json": b'{"not": "onnx"}', "zip": b"PK\x03\x04rest",
             "text": b"hello world, I am a model"}
    for name, data in cases.items():
        with pytest.raises(Unprocessable):
            inspect_onnx(write(tmp_path / f"{name}.onnx", data))
    with pytest.raises(InvalidOnnxModel):
        inspect_onnx(tmp_path / "missing.onnx")


def test_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "m.onnx", identity_classifier(4))
    with pytest.raises(InvalidOnnxModel, match="limit"):
        inspect_onnx(path, max_bytes=10)


def test_checker_rejects_a_broken_graph(tmp_path: Path) -> None:
    import onnx

    model = onnx.load_model_from_string(identity_classifier(4))
    model.graph.node[0].input[1] = "does_not_exist"
    with pytest.raises(InvalidOnnxModel, match="checker"):
        inspect_onnx(write(tmp_path / "broken.onnx", model.SerializeToString()))


def _external(tmp_path: Path, location: str) -> Path:
    import onnx

    model = onnx.load_model_from_string(classifier(np.eye(4, dtype=np.float32)))
    weights = model.graph.initializer[0]
    weights.data_location = onnx.TensorProto.EXTERNAL
    raw = weights.raw_data or np.eye(4, dtype=np.float32).tobytes()
    weights.ClearField("raw_data")
    weights.ClearField("float_data")
    entry = weights.external_data.add()
    entry.key, entry.value = "location", location
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    if not os.path.isabs(location) and ".." not in location and not (folder / location).is_symlink():
        (folder / location).write_bytes(raw)
    return write(folder / "m.onnx", model.SerializeToString())


def test_external_data_inside_the_folder_is_accepted(tmp_path: Path) -> None:
    info = inspect_onnx(_external(tmp_path, "weights.bin"))
    assert info.external_data == ["weights.bin"]
    assert info.size > (tmp_path / "model" / "m.onnx").stat().st_size


@pytest.mark.parametrize("location", ["/etc/passwd", "../secret.bin", "sub/../../secret.bin", "..\\secret.bin"])
def test_external_data_escaping_the_folder_is_rejected(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    with pytest.raises(InvalidOnnxModel, match="external-data"):
        inspect_onnx(_external(tmp_path, location))


def test_external_data_symlink_out_of_the_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(InvalidOnnxModel, match="outside"):
        inspect_onnx(_external(tmp_path, "link.bin"))
