"""The docker SDK path against a fake Docker engine: a local HTTP server speaking the engine API's
`/version`, `/build` and `/images/{id}/json` (the one allowed fake — no engine runs here)."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from msm.registry.docker import SdkDockerEngine
from tests.msm.archives import tar_files
from tests.msm.onnx_models import identity_classifier
from tests.support.auth import as_role
from tests.support.http_server import LocalServer, QuietHandler
from tests.support.msm import upload

IMAGE = "0123456789ab" * 5 + "cdef"


class FakeDockerEngine(LocalServer):
    def __init__(self) -> None:
        self.builds: list[dict[str, Any]] = []
        engine = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _json(self, status: int, body: Any) -> None:
                self.reply(status, json.dumps(body).encode())

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    out = b""
                    while (size := int(self.rfile.readline().strip(), 16)) > 0:
                        out += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return out
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def do_GET(self) -> None:  # noqa: N802
                path = re.sub(r"^/v[0-9.]+", "", urlsplit(self.path).path)
                if path == "/version":
                    return self._json(200, {"ApiVersion": "1.45", "MinAPIVersion": "1.24", "Version": "fake"})
                if path.startswith("/images/") and path.endswith("/json"):
                    return self._json(200, {"Id": f"sha256:{IMAGE}", "RepoTags": [b["tag"] for b in engine.builds]})
                self._json(404, {"message": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if re.sub(r"^/v[0-9.]+", "", parts.path) != "/build":
                    return self._json(404, {"message": "not found"})
                context = self._body()
                files = tar_files(context)
                tag = parse_qs(parts.query).get("t", [""])[0]
                engine.builds.append({"tag": tag, "files": files})
                lines = [{"stream": "Step 1/8 : FROM python:3.11-slim\n"}]
                missing = [n for line in files.get("Dockerfile", b"").decode().splitlines() if line.startswith("COPY ")
                           for n in line.split()[1:-1] if n not in files]
                if "Dockerfile" not in files or missing:
                    lines.append({"error": f"COPY failed: {missing or 'no Dockerfile'}"})
                elif tag.endswith(":broken"):  # how this fake engine is told to fail a RUN step
                    lines.append({"error": "The command '/bin/sh -c pip install' returned a non-zero code: 1"})
                else:
                    lines.append({"stream": f"Successfully built {IMAGE[:12]}\n"})
                self.reply(200, b"".join(json.dumps(x).encode() + b"\r\n" for x in lines))

        super().__init__(Handler, scheme="tcp")  # the docker SDK's URL of an engine over TCP


@pytest.fixture
def engine() -> Iterator[FakeDockerEngine]:
    with FakeDockerEngine() as running:
        yield running


async def test_build_through_the_docker_sdk(msm: httpx.AsyncClient, engine: FakeDockerEngine) -> None:
    model = identity_classifier(4)
    version = (await upload(msm, "emotion", model)).json()
    msm.app.state.docker_engine = SdkDockerEngine(engine.url)  # type: ignore[attr-defined] - as MLIFE_MSM_DOCKER_HOST
    got = await msm.post(f"/model-versions/{version['id']}/docker-build", json={"tag": "mlife/emotion:1"},
                         headers=as_role("maintainer"))
    assert got.status_code == 200, got.text
    assert got.json()["image_id"] == f"sha256:{IMAGE}" and got.json()["tag"] == "mlife/emotion:1"
    assert engine.builds[0]["tag"] == "mlife/emotion:1" and engine.builds[0]["files"]["model.onnx"] == model
    assert any("Successfully built" in line for line in got.json()["log"])


async def test_a_failed_build_or_an_unreachable_engine_is_a_clear_error(msm: httpx.AsyncClient,
                                                                       engine: FakeDockerEngine) -> None:
    version = (await upload(msm, "emotion", identity_classifier(4))).json()
    msm.app.state.docker_engine = SdkDockerEngine(engine.url)  # type: ignore[attr-defined]
    failed = await msm.post(f"/model-versions/{version['id']}/docker-build", json={"tag": "a/b:broken"},
                            headers=as_role("maintainer"))
    assert failed.status_code == 422 and "non-zero code" in failed.json()["detail"]
    msm.app.state.docker_engine = SdkDockerEngine("tcp://127.0.0.1:1")  # type: ignore[attr-defined]
    down = await msm.post(f"/model-versions/{version['id']}/docker-build", json={"tag": "a/b:1"},
                          headers=as_role("maintainer"))
    assert down.status_code == 503
