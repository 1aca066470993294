"""The MLife Python SDK: one `Client` over the gateway's HTTP API (httpx).

    from mlife.client import Client
    c = Client("http://127.0.0.1:8000", token="mlf_…")      # or Client.from_env()
    b = c.report_badcase(function="emotion", prediction="happy", ground_truth="sad")
    for b in c.iter_badcases(status="new"): ...
    c.upload_dir("photos/", workers=4)                        # MD5 precheck: known files are skipped
    t = c.create_task("train", [dataset_id], code_dir="src/", command="python train.py", function="digits")

Every error is an `MLifeAPIError` carrying the API's `{"error", "detail"}`."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import httpx

CONFIG_PATH = Path(os.environ.get("MLIFE_CONFIG", Path.home() / ".config" / "mlife" / "config.json"))
CHUNK = 1024 * 1024
# Never part of a task's code: caches and environments (a .venv alone can exceed MTT's upload limit).
SKIPPED_IN_CODE = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".mypy_cache", ".pytest_cache",
                             ".ruff_cache", ".ipynb_checkpoints"})
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


class MLifeAPIError(Exception):
    def __init__(self, status: int, error: str, detail: Any) -> None:
        self.status, self.error, self.detail = status, error, detail
        text = detail if isinstance(detail, str) else json.dumps(detail)
        super().__init__(f"{status} {error}: {text}")


def load_config() -> dict[str, str]:
    try:
        config = json.loads(CONFIG_PATH.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in config.items()} if isinstance(config, dict) else {}


def save_config(url: str, token: str) -> Path:
    """The token in ~/.config/mlife/config.json, readable by its owner only (0600 from creation)."""
    CONFIG_PATH.parent.mkdir(parents=True, exist_ok=True)
    tmp = CONFIG_PATH.with_name(f".config.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "token": token}, fh)
    os.replace(tmp, CONFIG_PATH)
    return CONFIG_PATH


def md5_of(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - content addressing, as DAM does
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    while chunk := fh.read(CHUNK):
        yield chunk


def zip_folder(folder: str | Path) -> IO[bytes]:
    """`folder` (relative to the working directory, or absolute) as a .zip, paths relative to the folder;
    caches and environments (SKIPPED_IN_CODE, *.pyc) left out. Kept in memory up to 16 MiB, then on disk."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, "not a folder" if folder.exists() else "no such folder", str(folder))
    archive = tempfile.SpooledTemporaryFile(max_size=16 * CHUNK)  # noqa: SIM115 - the caller closes it
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_IN_CODE)
            for name in sorted(files):
                path = Path(root) / name
                if path.suffix != ".pyc" and path.is_file():
                    z.write(path, path.relative_to(folder).as_posix())
    archive.seek(0)
    return archive


def read_inputs(path: str | Path, input_name: str | None = None) -> dict[str, Any]:
    """Model inputs from a file: `.npy` (one array: `input_name`'s), `.npz` (one array per input name) or `.json`
    (`{name: array}`, or a predict body `{"inputs": {...}}`)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        data = data.get("inputs", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the JSON must be an object of input name → array")
        return data
    import numpy as np

    with path.open("rb") as fh:
        loaded = np.load(fh, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            if not input_name:
                raise ValueError(f"{path}: a .npy file holds one array: name the model input it is for")
            return {input_name: loaded.tolist()}
        with loaded:
            return {name: loaded[name].tolist() for name in loaded.files}


@dataclass
class UploadSummary:
    files: int = 0
    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)


class Client:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0),
                                 transport=transport)

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None) -> Client:
        """Arguments, then MLIFE_URL / MLIFE_TOKEN, then the file `mlife login` wrote."""
        config = load_config()
        url = url or os.environ.get("MLIFE_URL") or config.get("url") or "http://127.0.0.1:8000"
        token = token or os.environ.get("MLIFE_TOKEN") or config.get("token")
        return cls(url, token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if kwargs.get("params"):
            kwargs["params"] = {k: v for k, v in kwargs["params"].items() if v is not None}
        r = self.http.request(method, path, **kwargs)
        return self._answer(r)

    def object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """`request` for a route that answers a JSON object."""
        answer = self.request(method, path, **kwargs)
        if not isinstance(answer, dict):
            raise MLifeAPIError(502, "UnexpectedAnswer", f"{method} {path} answered {type(answer).__name__}, "
                                "not a JSON object")
        return answer

    def objects(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """`request` for a route that answers a JSON array of objects."""
        answer = self.request(method, path, **kwargs)
        if not isinstance(answer, list) or not all(isinstance(row, dict) for row in answer):
            raise MLifeAPIError(502, "UnexpectedAnswer", f"{method} {path} did not answer a list of objects")
        return answer

    @staticmethod
    def _answer(r: httpx.Response) -> Any:
        if r.status_code >= 400:
            try:
                body = r.json()
                error, detail = body.get("error", "Error"), body.get("detail", body)
            except ValueError:
                error, detail = "Error", r.text
            raise MLifeAPIError(r.status_code, error, detail)
        if r.status_code == 204 or not r.content:
            return None
        if "json" in r.headers.get("content-type", ""):
            return r.json()
        return r.text

    def me(self) -> dict[str, Any]:
        return self.object("GET", "/api/gateway/me")

    @staticmethod
    def login(url: str, username: str, password: str, token_name: str = "mlife-cli") -> str:
        """Log in with a password and create an API token for this machine; returns the token."""
        with httpx.Client(base_url=url.rstrip("/"), timeout=30) as http:
            r = http.post("/api/gateway/login", json={"username": username, "password": password})
            me = Client._answer(r)
            t = Client._answer(http.post("/api/gateway/tokens", json={"name": token_name},
                                         headers={"X-CSRF-Token": me["csrf_token"]}))
            http.post("/api/gateway/logout", headers={"X-CSRF-Token": me["csrf_token"]})
            return str(t["token"])

    # --- BAM ---------------------------------------------------------------------------------------

    def report_badcase(self, file: Path | None = None, **report: Any) -> dict[str, Any]:
        """201 new or 200 merged (`merged_into` set). With `file`, the data is stored by BAM."""
        report = {k: v for k, v in report.items() if v is not None}
        if file is None:
            return self.object("POST", "/api/bam/badcases", json=report)
        with Path(file).open("rb") as fh:
            return self.object("POST", "/api/bam/badcases/with-data", data={"report": json.dumps(report)},
                                files={"file": (Path(file).name, fh)})

    def import_badcases(self, path: Path, format: str | None = None) -> dict[str, Any]:
        """Bulk import of a CSV or JSON-lines file, streamed."""
        path = Path(path)
        fmt = format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        ctype = "text/csv" if fmt == "csv" else "application/x-ndjson"
        with path.open("rb") as fh:
            return self.object("POST", "/api/bam/badcases/import", content=_file_chunks(fh),
                                headers={"Content-Type": ctype}, timeout=None)

    def list_badcases(self, *, limit: int = 50, cursor: str | None = None, sort: str | None = None,
                      **filters: Any) -> dict[str, Any]:
        return self.object("GET", "/api/bam/badcases", params={**filters, "limit": limit, "cursor": cursor,
                                                                "sort": sort})

    def iter_badcases(self, **filters: Any) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self.list_badcases(cursor=cursor, limit=500, **filters)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def badcase(self, badcase_id: str) -> dict[str, Any]:
        return self.object("GET", f"/api/bam/badcases/{badcase_id}")

    def triage(self, badcase_id: str, **changes: Any) -> dict[str, Any]:
        return self.object("PATCH", f"/api/bam/badcases/{badcase_id}", json=changes)

    def badcase_stats(self, group_by: str, limit: int = 50, **filters: Any) -> dict[str, Any]:
        return self.object("GET", "/api/bam/stats", params={**filters, "group_by": group_by, "limit": limit})

    def weekly_stats(self, weeks: int = 12, **filters: Any) -> dict[str, Any]:
        return self.object("GET", "/api/bam/stats/weekly", params={**filters, "weeks": weeks})

    def add_to_test_data(self, ids: list[str] | None = None, **filters: Any) -> dict[str, Any]:
        """The badcases `ids`, or those the filters select (those of `GET /badcases`), appended to their
        function's badcase test set in DAM. Answers `added` and the `skipped` ones with the reason."""
        filters = {k: v for k, v in filters.items() if v is not None}
        if bool(ids) == bool(filters):
            raise ValueError("give badcase ids or filters (not both)")
        body = {"ids": list(ids)} if ids else {"filter": filters}
        return self.object("POST", "/api/bam/badcases/add-to-test-data", json=body)

    def badcase_preview(self, badcase_id: str, **params: Any) -> tuple[str, bytes]:
        """The preview of a badcase's data, asked of the service that holds it, as the badcase's `preview` says:
        BAM (its attachment, a served input, a tabular row) or DAM (a file by MD5). Answers (content type, bytes):
        a PNG (an image thumbnail, a waveform or spectrogram, a poster frame or a strip of frames, a tensor drawn
        as an image) or JSON (a text snippet, a table's rows, a tensor summary). `params` are the preview's:
        `size`, `view` (waveform | spectrogram | poster | strip), `start`, `end`, `at`, `frames` — the segment's
        start and end by default for audio and video. A badcase with nothing to preview is a 404 MLifeAPIError."""
        b = self.badcase(badcase_id)
        ref = b.get("preview")
        if not isinstance(ref, dict) or not ref.get("source"):
            raise MLifeAPIError(404, "NoPreview", f"badcase {badcase_id} has no data stored on the platform to preview")
        media = ref.get("media_type") or b.get("media_type")
        if media in ("audio", "video"):
            segment = {"start": b.get("segment_start"), "end": b.get("segment_end")}
            if media == "video" and params.get("view") in (None, "poster"):
                segment = {"at": b.get("segment_start")}
            params = {**segment, **params}
        if ref["source"] == "dam":
            if not ref.get("md5"):
                raise MLifeAPIError(502, "UnexpectedAnswer", f"badcase {badcase_id}: a DAM preview without an MD5")
            path = f"/api/dam/files/{ref['md5']}/preview"
        else:
            path = f"/api/bam/badcases/{badcase_id}/preview"
        r = self.http.get(path, params={k: v for k, v in params.items() if v is not None})
        if r.status_code >= 400:
            self._answer(r)  # raises the API's error
        return r.headers.get("content-type", "application/octet-stream").split(";")[0].strip(), r.content

    # --- DAM ---------------------------------------------------------------------------------------

    def check_files(self, md5s: list[str]) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.object("POST", "/api/dam/files/check", json={"md5s": md5s}).items()}

    def upload_file(self, path: Path, name: str | None = None, md5: str | None = None) -> dict[str, Any]:
        """Streamed; with `md5`, DAM verifies the content and stores nothing on a mismatch."""
        path = Path(path)
        with path.open("rb") as fh:
            return self.object("POST", "/api/dam/files", params={"name": name or path.name, "md5": md5},
                                content=_file_chunks(fh), timeout=None,
                                headers={"Content-Type": "application/octet-stream",
                                         "Content-Length": str(path.stat().st_size)})

    def upload_dir(self, folder: Path, *, workers: int = 4, prefix: str = "",
                   progress: Callable[[UploadSummary, int, int], None] | None = None) -> UploadSummary:
        """Every file under `folder`: MD5s first, then one check call per 1000 files, then only the
        missing ones uploaded, `workers` at a time. `progress(summary, done_bytes, total_bytes)`."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(errno.ENOENT, "not a folder" if folder.exists() else "no such folder", str(folder))
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        summary = UploadSummary(files=len(files))
        with ThreadPoolExecutor(max(1, workers)) as pool:
            md5s = list(pool.map(md5_of, files))
        known: set[str] = set()
        for i in range(0, len(md5s), 1000):
            known |= set(self.check_files(md5s[i:i + 1000])["existing"])
        todo = []
        for path, md5 in zip(files, md5s, strict=True):
            name = f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}" if prefix else \
                path.relative_to(folder).as_posix()
            if md5 in known:
                summary.skipped += 1
                summary.results.append({"path": name, "md5": md5, "status": "skipped"})
            else:
                known.add(md5)  # two equal files in the folder: upload one
                todo.append((path, name, md5))
        total = sum(p.stat().st_size for p, _, _ in todo)
        done = 0
        if progress:
            progress(summary, 0, total)
        with ThreadPoolExecutor(max(1, workers)) as pool:
            futures = {pool.submit(self.upload_file, p, n, m): (p, n, m) for p, n, m in todo}
            for future in as_completed(futures):
                path, name, md5 = futures[future]
                try:
                    r = future.result()
                    summary.uploaded += 1
                    summary.bytes_uploaded += path.stat().st_size
                    summary.results.append({"path": name, "md5": md5,
                                            "status": "duplicate" if r.get("duplicate") else "uploaded"})
                except (MLifeAPIError, httpx.HTTPError, OSError) as exc:
                    summary.failed.append({"path": name, "error": str(exc)})
                done += path.stat().st_size
                if progress:
                    progress(summary, done, total)
        return summary

    def import_document(self, path: Path, name: str, format: str | None = None, description: str = "", *,
                        kind: str | None = None, label_column: str | None = None) -> Any:
        """A document from a CSV / JSON / XML file; `kind="table"` for a plain table (features + a label column)."""
        path = Path(path)
        fmt = format or path.suffix.lstrip(".").lower()
        params = {"name": name, "format": fmt, "description": description, "kind": kind, "label_column": label_column}
        with path.open("rb") as fh:
            return self.request("POST", "/api/dam/documents", params={k: v for k, v in params.items() if v is not None},
                                content=_file_chunks(fh), timeout=None,
                                headers={"Content-Type": "application/octet-stream"})

    def list_documents(self, q: str | None = None) -> Any:
        return self.request("GET", "/api/dam/documents", params={"q": q})

    def export_document(self, document_id: str, out: BinaryIO, format: str = "csv",
                        version: int | None = None) -> int:
        """Streams the export into `out`; returns the byte count."""
        params = {k: v for k, v in {"format": format, "version": version}.items() if v is not None}
        with self.http.stream("GET", f"/api/dam/documents/{document_id}/export", params=params) as r:
            if r.status_code >= 400:
                r.read()
                self._answer(r)
            n = 0
            for chunk in r.iter_bytes():
                out.write(chunk)
                n += len(chunk)
            return n

    def group_dataset(self, name: str, documents: list[str], split: dict[str, float] | None = None,
                      **extra: Any) -> Any:
        body: dict[str, Any] = {"name": name, "documents": [{"id": d} for d in documents], **extra}
        if split:
            body["split"] = split
        return self.request("POST", "/api/dam/datasets", json=body)

    # --- MTT ---------------------------------------------------------------------------------------

    def create_task(self, kind: str, datasets: list[str | dict[str, Any]], *, code_dir: str | Path | None = None,
                    command: str | None = None, params: dict[str, Any] | None = None, function: str | None = None,
                    **fields: Any) -> dict[str, Any]:
        """A training or testing task in one call. `code_dir` (a local folder, relative or absolute) is zipped
        and uploaded as the task's code with it; `datasets` are ids or `{"dataset_id", "manifest_key"}`; other
        fields of MTT's TaskCreate (`name`, `model_name`, `code_location`, `run`, …) as keywords. With code, one
        multipart request (`task` JSON + `code` zip): a command and `run` are fine at once."""
        body = {"kind": kind, "datasets": [{"dataset_id": d} if isinstance(d, str) else d for d in datasets],
                "command": command, "params": params, "function": function, **fields}
        body = {k: v for k, v in body.items() if v is not None}
        if code_dir is None:
            return self.object("POST", "/api/mtt/tasks", json=body)
        with zip_folder(code_dir) as archive:
            return self.object("POST", "/api/mtt/tasks", timeout=None, files={
                "task": (None, json.dumps(body), "application/json"),
                "code": (f"{Path(code_dir).resolve().name or 'code'}.zip", archive, "application/zip")})

    def list_tasks(self, **params: Any) -> list[dict[str, Any]]:
        return self.objects("GET", "/api/mtt/tasks", params=params)

    def task(self, task_id: str) -> Any:
        return self.request("GET", f"/api/mtt/tasks/{task_id}")

    def run_task(self, task_id: str) -> Any:
        return self.request("POST", f"/api/mtt/tasks/{task_id}/run")

    def task_logs(self, task_id: str, offset: int = 0) -> Any:
        return self.request("GET", f"/api/mtt/tasks/{task_id}/logs", params={"offset": offset})

    def task_report(self, task_id: str) -> Any:
        return self.request("GET", f"/api/mtt/tasks/{task_id}/report")

    # --- MSM ---------------------------------------------------------------------------------------

    def list_models(self, **params: Any) -> Any:
        return self.request("GET", "/api/msm/models", params=params)

    def model(self, name: str) -> Any:
        return self.request("GET", f"/api/msm/models/{name}")

    def set_alias(self, name: str, alias: str, version: str, reason: str = "") -> Any:
        return self.request("POST", f"/api/msm/models/{name}/aliases",
                            json={"alias": alias, "version": version, "reason": reason})

    def deploy(self, name: str, version_ids: list[str], **extra: Any) -> dict[str, Any]:
        body = {"name": name, "versions": [{"model_version_id": v} for v in version_ids],
                **{k: v for k, v in extra.items() if v is not None}}
        return self.object("POST", "/api/msm/deployments", json=body)

    def predict(self, deployment: str, inputs: dict[str, Any], **extra: Any) -> Any:
        return self.request("POST", f"/api/msm/serve/{deployment}/predict", json={"inputs": inputs, **extra})

    def feedback(self, deployment: str, correct_label: Any, *, inputs: dict[str, Any] | None = None,
                 input_ref: str | None = None, prediction_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """Flag a served prediction as wrong: MSM keeps the input and BAM files a badcase (source `serving`).
        Give the served `inputs`, an `input_ref` (MD5 or object key), or the `prediction_id` of a logged
        prediction; `extra`: `prediction`, `model_version_id`, `client_id`, `device_id`."""
        body = {"correct_label": correct_label, "inputs": inputs, "input_ref": input_ref,
                "prediction_id": prediction_id, **extra}
        return self.object("POST", f"/api/msm/serve/{deployment}/feedback",
                            json={k: v for k, v in body.items() if v is not None or k == "correct_label"})

    def set_model_function(self, name: str, function: str) -> dict[str, Any]:
        """Declare the function a model serves (needed before it can be deployed)."""
        return self.object("PATCH", f"/api/msm/models/{name}", json={"function": function})

    def model_version(self, name: str, version: str) -> dict[str, Any]:
        """A version of the model `name` by its number, its id, or an alias (`production`, …)."""
        model = self.model(name)
        by_id = {str(v["id"]): v for v in model.get("versions", [])}
        wanted = next((a["version_id"] for a in model.get("aliases", []) if a["alias"] == version), None) or \
            next((i for i, v in by_id.items() if v["version"] == version), None) or version
        if str(wanted) not in by_id:
            raise MLifeAPIError(404, "VersionNotFound", f"model {name} has no version or alias {version!r}; "
                                f"versions: {', '.join(v['version'] for v in by_id.values()) or 'none'}")
        version_row: dict[str, Any] = by_id[str(wanted)]
        return version_row

    def gate_preview(self, version_id: str, **params: Any) -> dict[str, Any]:
        """What the deployment gate would say about this version now (nothing is recorded); `params`: MSM's
        query parameters, e.g. `metric="accuracy", min=0.9`."""
        return self.object("GET", f"/api/msm/model-versions/{version_id}/gate", params=params)

    def deployment(self, ref: str) -> dict[str, Any]:
        """A deployment by id, or by name: its live one, else its newest."""
        if _UUID.match(ref):
            return self.object("GET", f"/api/msm/deployments/{ref}")
        found = self.request("GET", "/api/msm/deployments", params={"name": ref, "status": "live", "limit": 1}) or \
            self.request("GET", "/api/msm/deployments", params={"name": ref, "limit": 1})
        if not found:
            raise MLifeAPIError(404, "DeploymentNotFound", f"no deployment named {ref!r}")
        deployment: dict[str, Any] = found[0]
        return deployment

    def rollback(self, deployment: str, reason: str = "") -> dict[str, Any]:
        """Roll a live deployment (id or name) back to the one it replaced; returns the restored deployment."""
        deployment_id = deployment if _UUID.match(deployment) else self.deployment(deployment)["id"]
        return self.object("POST", f"/api/msm/deployments/{deployment_id}/rollback", json={"reason": reason})
