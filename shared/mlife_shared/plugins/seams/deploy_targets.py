"""The deploy_targets seam: where MSM brings a deployment up once it passed its gate. A deployment names its
target (`POST /api/msm/deployments {"target": "<name>", ...}`, default `local`); naming one MSM does not have
active is a 422 that lists the active ones. MSM's deployer downloads every version's model into a scratch folder
(and checks that each ONNX one loads), then calls the target's `bring_up` (in a worker thread: blocking calls are
fine). What it returns decides the deployment: a result → `live` (the artifact file, if any, stored under the
deployment and named in its `artifact_key`, the message in its history); an exception → `failed` with its
message (raise `DeployFailed("what went wrong")` for a clean one).

Built-ins: `local` (served by MSM itself at /api/msm/serve/<name>/predict), `docker` (a Docker build context,
built into an image when MLIFE_MSM_DOCKER_HOST names an engine), `edge` (a tar.gz of the models + manifest).

    from mlife_shared.plugins.seams.deploy_targets import DeployRequest, DeployResult

    class Bucket:
        name, api, description = "bucket", ">=1,<2", "copies the models to a shared folder"
        onnx_only = False

        def bring_up(self, request: DeployRequest) -> DeployResult:
            folder = Path("/srv/models") / request.name
            for v in request.versions:
                shutil.copyfile(v.path, folder / f"{v.name}-{v.version}.onnx")
            return DeployResult(message=f"copied {len(request.versions)} models to {folder}")

registered as `[project.entry-points."mlife.deploy_targets"] bucket = "my_pkg:Bucket"`. Names are at most
20 characters (`[a-z0-9][a-z0-9_-]*`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

TARGET_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,19}$"


class DeployFailed(Exception):  # noqa: N818 - the deployment's failure reason, recorded as it is
    """The target could not bring the deployment up: the deployment fails with this message."""


@dataclass(frozen=True)
class DeployVersion:
    """One model version of the deployment, its model file downloaded to `path`."""

    model_version_id: str
    name: str
    version: str
    role: Literal["primary", "shadow"]
    weight: float
    path: Path
    onnx: bool  # an ONNX model (servable by onnxruntime); else another format stored as uploaded
    md5: str = ""
    signature: dict[str, Any] = field(default_factory=dict)  # {"inputs": [...], "outputs": [...]} of an ONNX model


@dataclass(frozen=True)
class DeployRequest:
    """A deployment to bring up. `scratch` is a private folder deleted afterwards: write the artifact there."""

    deployment_id: str
    name: str  # the endpoint name, unique among live deployments
    function: str | None
    routing: Literal["single", "ab", "shadow"]
    versions: list[DeployVersion]
    scratch: Path
    options: dict[str, Any] = field(default_factory=dict)  # MSM's settings for the built-ins (docker_host)

    def primary(self) -> DeployVersion:
        return next(v for v in self.versions if v.role == "primary")


@dataclass(frozen=True)
class DeployResult:
    """The deployment is up. `artifact`: a file (in `scratch`) MSM stores as the deployment's artifact, under
    deployments/<id>/<its file name>; `message`: one line for the deployment's history."""

    artifact: Path | None = None
    message: str = ""


@runtime_checkable
class DeployTarget(Protocol):
    name: str
    api: str
    description: str
    onnx_only: bool  # every version must be an ONNX model: others are refused when the deployment is requested

    def bring_up(self, request: DeployRequest) -> DeployResult:
        """Bring the deployment up (blocking is fine: MSM calls it in a worker thread); raise DeployFailed."""


PROTOCOL = DeployTarget


def _identity_onnx(path: Path) -> bool:
    """A one-node ONNX model (y = x) at `path`; False when the onnx package is not installed."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return False
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "conformance",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return True


def conformance(plugin: Any) -> None:
    """`onnx_only` is a bool; bringing up a one-version deployment of a tiny ONNX model gives a DeployResult whose
    artifact, if any, is a file inside the scratch folder, and whose message is a string."""
    assert isinstance(plugin.onnx_only, bool), "onnx_only should be True or False"
    with tempfile.TemporaryDirectory(prefix="mlife-target-conformance-") as tmp:
        scratch = Path(tmp)
        model = scratch / "model.onnx"
        if not _identity_onnx(model):
            return  # no onnx here to make a model with: the members are all that can be checked
        version = DeployVersion(model_version_id="00000000-0000-0000-0000-000000000001", name="conformance",
                                version="1", role="primary", weight=1.0, path=model, onnx=True, md5="0" * 32,
                                signature={"inputs": [{"name": "x", "type": "float32", "shape": [1, 2]}],
                                           "outputs": [{"name": "y", "type": "float32", "shape": [1, 2]}]})
        request = DeployRequest(deployment_id="00000000-0000-0000-0000-000000000002", name="conformance",
                                function="conformance", routing="single", versions=[version], scratch=scratch)
        result = plugin.bring_up(request)
        assert isinstance(result, DeployResult), f"bring_up should return a DeployResult, not {type(result).__name__}"
        assert isinstance(result.message, str), "DeployResult.message should be a string"
        if result.artifact is not None:
            artifact = Path(result.artifact)
            assert artifact.is_file(), f"the artifact {artifact} should be a file"
            assert artifact.resolve().is_relative_to(scratch.resolve()), "the artifact should be inside scratch"
