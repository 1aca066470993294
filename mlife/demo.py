"""`mlife demo`: the closed loop on scikit-learn's digits, against a running MLife (MLIFE_URL, MLIFE_TOKEN).

    python -m mlife.demo [--url URL] [--token TOKEN] [--workdir DIR] [--timeout SECONDS]

Every step goes through the gateway's public API and prints where to see it in the UI:

 1. the digits written out as PNG files (examples/digits/make_dataset.py), uploaded to DAM (MD5 precheck:
    a re-run uploads nothing), their document imported, grouped into train/test (→ dataset.grouped → MTT
    makes a training task);
 2. v1, a weak model (C=0.01), trained with examples/digits/train.py (uploaded as the task's code) →
    model.uploaded → MSM registers it → MTT's regression testing → testing.completed → BAM files its
    mispredictions as badcases (source testing);
 3. v1 deployed (the gate passes: nothing in production yet), made `production`; predictions on
    traffic, the wrong ones reported as feedback → serving.feedback → badcases (source serving);
 4. the badcases added to test data (→ DAM's badcase test set), grouped as a test set;
 5. v2 (C=1.0) fixes most of them: tested on the badcase test set, deployed, `production`;
 6. v3 (C=0.001) regresses badcases v2 fixed: the gate blocks its deployment and names them;
 7. v4 (the good parameters again) passes the gate, is deployed and answers predictions.

Each run uses its own names (document, datasets, model, deployment), so it can be re-run at will. Every
wait has a timeout and names the step that stalled. Needs an engineer token; moving `production` needs a
maintainer (the admin token of `mlife up` is one)."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from mlife.client import Client, MLifeAPIError

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits"
BADCASE_TEST_SET_KIND = "badcase test set"
WEAK, GOOD, WORSE = {"C": 0.01}, {"C": 1.0}, {"C": 0.001}


class Stalled(RuntimeError):
    """A step did not complete in time (or failed); the message names it."""


@dataclass
class Trained:
    label: str
    params: dict[str, Any]
    task: dict[str, Any]
    version: dict[str, Any]  # MSM version detail (testing results, badcase outcomes)


@dataclass
class LoopResult:
    run: str
    model: str
    deployment: str
    document_id: str = ""
    train_dataset_id: str = ""
    test_dataset_id: str = ""
    badcase_dataset_id: str = ""
    testing_badcases: list[str] = field(default_factory=list)
    serving_badcases: list[str] = field(default_factory=list)
    models: dict[str, Trained] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocked: dict[str, Any] = field(default_factory=dict)
    final_predictions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class Demo:
    def __init__(self, client: Client, *, workdir: Path, timeout: float = 600.0, run: str | None = None,
                 out: Callable[[str], None] = print, traffic: int = 100, feedback: int = 6) -> None:
        self.c = client
        self.workdir = workdir
        self.timeout = timeout
        self.out = out
        self.traffic, self.max_feedback = traffic, feedback
        run = run or time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.r = LoopResult(run=run, model=f"digits-{run}", deployment=f"digits-{run}")
        self.step = 0
        self.labels: dict[str, str] = {}  # md5 → label
        self.pngs: dict[str, Path] = {}

    # --- output and waiting -----------------------------------------------------------------------

    def link(self, route: str) -> str:
        return f"{self.c.url}/#/{route}"

    def say(self, text: str, route: str | None = None) -> None:
        self.step += 1
        self.out(f"[{self.step:2d}] {text}" + (f"\n     → {self.link(route)}" if route else ""))

    def note(self, text: str) -> None:
        self.out(f"     {text}")

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float | None = None,
             interval: float = 1.0) -> T:
        """Poll `probe` until it returns something; a timeout raises `Stalled` naming the step."""
        limit = timeout or self.timeout
        deadline = time.monotonic() + limit
        last_error: Exception | None = None
        while True:
            try:
                value = probe()
                if value is not None:
                    return value
            except Stalled:
                raise
            except (MLifeAPIError, httpx.HTTPError, OSError) as exc:  # transient (a service restarting): keep polling
                last_error = exc
            if time.monotonic() > deadline:
                extra = f" (last error: {last_error})" if last_error else ""
                raise Stalled(f"stalled at step {self.step}: {what} did not happen within {limit:.0f}s{extra}")
            time.sleep(interval)

    # --- the steps --------------------------------------------------------------------------------

    def run(self) -> LoopResult:
        started = time.monotonic()
        r = self.r
        self.out(f"MLife demo (run {r.run}) against {self.c.url}")
        self.prepare_images()
        self.upload_and_import()
        self.group()
        v1 = self.train("v1", WEAK, first=True, why="a weak model (C=0.01)")
        self.testing_badcases(v1)
        self.deploy(v1, production=True)
        self.serve_and_feedback(v1)
        self.add_to_test_data()
        v2 = self.train("v2", GOOD, why="a stronger model (C=1.0) that should fix them")
        self.show_badcase_outcomes(v2)
        self.deploy(v2, production=True)
        v3 = self.train("v3", WORSE, why="a deliberately worse model (C=0.001)")
        self.show_badcase_outcomes(v3)
        self.blocked_by_gate(v3)
        v4 = self.train("v4", GOOD, why="the good parameters again (C=1.0): the fix")
        self.show_badcase_outcomes(v4)
        self.deploy(v4, production=True)
        self.final_predict(v4)
        r.seconds = time.monotonic() - started
        self.out(f"\nThe loop is closed (run {r.run}, {r.seconds:.0f}s): badcases from testing "
                 f"({len(r.testing_badcases)}) and serving ({len(r.serving_badcases)}), the gate blocked v3 "
                 f"({len(r.blocked.get('regressed_badcases', []))} regressed badcases), v4 serves "
                 f"'{r.deployment}'.")
        return r

    def prepare_images(self) -> None:
        spec = importlib.util.spec_from_file_location("mlife_digits_make_dataset", EXAMPLE / "make_dataset.py")
        if spec is None or spec.loader is None:
            raise Stalled(f"cannot load {EXAMPLE / 'make_dataset.py'}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        images = self.workdir / "images"
        images.mkdir(parents=True, exist_ok=True)
        import hashlib

        for data, label in module.digits_pngs():
            md5 = hashlib.md5(data).hexdigest()  # noqa: S324 - content address, as DAM
            path = images / f"{md5}.png"
            if not path.exists() or path.stat().st_size != len(data):
                path.write_bytes(data)
            self.labels[md5], self.pngs[md5] = label, path
        self.say(f"{len(self.labels)} digit images written as PNG to {images}")

    def upload_and_import(self) -> None:
        s = self.c.upload_dir(self.workdir / "images", workers=4)
        if s.failed:
            raise Stalled(f"uploading to DAM failed for {len(s.failed)} files, e.g. {s.failed[0]}")
        self.say(f"uploaded to DAM: {s.uploaded} new, {s.skipped} already there (deduplicated by MD5)", "data")
        doc = self.workdir / f"digits-{self.r.run}.jsonl"
        doc.write_text("".join(json.dumps({"md5": m, "annotation": lbl}) + "\n" for m, lbl in self.labels.items()))
        d = self.c.import_document(doc, name=f"digits {self.r.run}", format="json",
                                   description="scikit-learn digits, imported by mlife demo")
        self.r.document_id = str(d["id"])
        self.say(f"document 'digits {self.r.run}' imported ({len(self.labels)} rows)",
                 f"data/documents/{self.r.document_id}")

    def group(self) -> None:
        g = self.c.group_dataset(f"digits-{self.r.run}", [self.r.document_id], split={"train": 0.8, "test": 0.2},
                                 stratify=True, seed=0)
        by = {d["purpose"]: d for d in g["datasets"]}
        self.r.train_dataset_id, self.r.test_dataset_id = str(by["train"]["id"]), str(by["test"]["id"])
        self.say(f"grouped: train {by['train']['item_count']} items, test {by['test']['item_count']} items "
                 f"(dataset.grouped → MTT)", f"data/documents/{self.r.document_id}")

    def _tasks(self, kind: str) -> list[dict[str, Any]]:
        return self.c.list_tasks(kind=kind, limit=500)

    def _task_with_dataset(self, kind: str, dataset_id: str) -> dict[str, Any] | None:
        for t in self._tasks(kind):
            if any(str(d.get("dataset_id")) == dataset_id for d in t.get("datasets", [])):
                return t
        return None

    def _code_zip(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(EXAMPLE / "train.py", "train.py")
        return buf.getvalue()

    def train(self, label: str, params: dict[str, Any], *, why: str, first: bool = False) -> Trained:
        r = self.r
        task: dict[str, Any] | None = None
        if first:  # the training task dataset.grouped made in MTT, waiting for its code
            task = self.wait("MTT creating a training task from dataset.grouped",
                             lambda: self._task_with_dataset("train", r.train_dataset_id))
            if task["status"] not in ("draft", "ready"):  # MTT has default training code: use a task of ours
                task = None
        if task is None:
            task = self.c.create_task(kind="train", name=f"{r.model} {label}",
                                      datasets=[{"dataset_id": r.train_dataset_id, "purpose": "train"},
                                                {"dataset_id": r.test_dataset_id, "purpose": "test"}])
        tid = str(task["id"])
        self.c.request("POST", f"/api/mtt/tasks/{tid}/code", content=self._code_zip(),
                       headers={"Content-Type": "application/zip"})
        all_params = {**params, "max_iter": 2000, "model_name": r.model}
        self.c.request("PATCH", f"/api/mtt/tasks/{tid}", json={"command": "python train.py", "params": all_params})
        self.c.run_task(tid)
        self.say(f"{label}: training task for {why} — code examples/digits/train.py uploaded, queued",
                 f"tasks/{tid}")

        def finished() -> dict[str, Any] | None:
            t = self.c.task(tid)
            if t["status"] in ("failed", "cancelled"):
                logs = self.c.task_logs(tid).get("text", "")[-1500:]
                raise Stalled(f"{label}: training task {tid} {t['status']}: {t.get('error')}\n{logs}")
            return t if t["status"] == "succeeded" else None

        task = self.wait(f"{label}: training task {tid} finishing (is an MTT runner up?)", finished)
        self.note(f"trained: {json.dumps(task.get('metrics', {}))}"
                  + (f"; MLflow run: {task['mlflow_url']}" if task.get("mlflow_url") else ""))
        version = self.wait(f"{label}: MSM registering the model of task {tid} (model.uploaded)",
                            lambda: self._version_of_task(tid))
        self.say(f"{label}: model.uploaded → MSM registered {r.model} v{version['version']}", f"models/{r.model}")
        need_badcases = bool(r.badcase_dataset_id)

        def tested() -> dict[str, Any] | None:
            v = self.c.request("GET", f"/api/msm/model-versions/{version['id']}")
            datasets = {str(t.get("dataset_id")) for t in v.get("testing", [])}
            if r.test_dataset_id not in datasets:
                return None
            if need_badcases and r.badcase_dataset_id not in datasets:
                return None
            return v

        what = "the test set" + (" and the badcase test set" if need_badcases else "")
        detail = self.wait(f"{label}: MTT's regression testing of v{version['version']} on {what} "
                           f"(model.registered → testing.completed → MSM)", tested)
        for t in detail["testing"]:
            kind = "badcase test set" if str(t.get("dataset_id")) == r.badcase_dataset_id else "test set"
            acc = t["metrics"].get("accuracy")
            self.say(f"{label}: tested on the {kind}: {t['passed']}/{t['samples']} correct"
                     + (f" (accuracy {acc:.3f})" if acc is not None else ""), f"tasks/{t['task_id']}")
        trained = Trained(label, params, task, detail)
        r.models[label] = trained
        return trained

    def _version_of_task(self, task_id: str) -> dict[str, Any] | None:
        try:
            m = self.c.model(self.r.model)
        except MLifeAPIError as exc:
            if exc.status == 404:
                return None
            raise
        for v in m.get("versions", []):
            if str(v.get("task_id")) == task_id:
                return v
        return None

    def _badcases(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.c.iter_badcases(model_name=self.r.model, **filters))

    def testing_badcases(self, m: Trained) -> None:
        test = next(t for t in m.version["testing"] if str(t.get("dataset_id")) == self.r.test_dataset_id)
        expected = int(test["samples"]) - int(test["passed"])
        version = str(m.version["version"])

        def filed() -> list[dict[str, Any]] | None:
            found = self._badcases(source="testing", model_version=version)
            return found if len(found) >= expected else None

        found = self.wait(f"BAM filing {expected} mispredictions of {m.label} as badcases (testing.completed)", filed)
        self.r.testing_badcases = [str(b["id"]) for b in found]
        self.say(f"testing.completed → BAM: {len(found)} badcases from {m.label}'s mispredictions (source testing)",
                 "badcases")
        if found:
            self.note(f"e.g. {self.link('badcases/' + str(found[0]['id']))}")

    def deploy(self, m: Trained, *, production: bool) -> dict[str, Any]:
        r = self.r
        vid = str(m.version["id"])
        d = self.c.deploy(r.deployment, [vid])
        fixed = sum(len(v.get("fixed_badcases", [])) for v in d["gate"].get("versions", []))
        self.say(f"{m.label}: deployment requested — the gate passed (no regression"
                 + (f"; fixes {fixed} badcases production fails" if fixed else "") + ")", f"deployments/{d['id']}")

        def live() -> dict[str, Any] | None:
            x = self.c.request("GET", f"/api/msm/deployments/{d['id']}")
            if x["status"] == "failed":
                raise Stalled(f"{m.label}: deployment {d['id']} failed: {x.get('history', [])[-1:]}")
            return x if x["status"] == "live" else None

        d = self.wait(f"{m.label}: deployment {d['id']} going live (deployment.requested → MSM deployer)", live)
        r.deployments[m.label] = d
        probe = next(iter(self.pngs))

        # MSM's API processes re-read their deployments in the background (a stale one may answer meanwhile)
        def serving() -> bool | None:
            return True if str(self.predict(m, probe)[1]["model_version"]) == str(m.version["version"]) else None

        self.wait(f"{m.label}: '{r.deployment}' answering with v{m.version['version']}", serving, interval=0.5)
        if production:
            self.c.set_alias(r.model, "production", str(m.version["version"]), reason=f"mlife demo: {m.label} is live")
            self.note(f"{r.model} v{m.version['version']} is live at /api/msm/serve/{r.deployment}/predict "
                      f"and is now `production`")
        return d

    def _pixels(self, md5: str) -> list[float]:
        from PIL import Image

        with Image.open(self.pngs[md5]) as im:
            return [p / 255.0 for p in im.convert("L").tobytes()]

    def _manifest(self, dataset_id: str) -> list[dict[str, Any]]:
        r = self.c.http.get(f"/api/dam/datasets/{dataset_id}/manifest")  # JSON lines
        if r.status_code >= 400:
            self.c._answer(r)
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]

    def _spread(self, items: list[dict[str, Any]], n: int) -> list[str]:
        """n MD5s spread over a manifest (manifests are ordered by class: the first ones are all zeros)."""
        md5s = [it["md5"] for it in items if it.get("md5") in self.pngs]
        step = max(1, len(md5s) // max(n, 1))
        return md5s[::step][:n]

    def _input_name(self, m: Trained) -> str:
        inputs = m.version.get("signature", {}).get("inputs", [])
        return str(inputs[0]["name"]) if inputs else "X"

    @staticmethod
    def _label(outputs: dict[str, Any]) -> str:
        value: Any = outputs.get("label", next(iter(outputs.values())))
        while isinstance(value, list):
            value = value[0]
        return str(value)

    def predict(self, m: Trained, md5: str) -> tuple[str, dict[str, Any]]:
        answer = self.c.predict(self.r.deployment, {self._input_name(m): self._pixels(md5)}, client_id="mlife-demo")
        return self._label(answer["outputs"]), answer

    def serve_and_feedback(self, m: Trained) -> None:
        r = self.r
        traffic = self._spread(self._manifest(r.train_dataset_id), self.traffic)
        wrong = []
        for md5 in traffic:
            label, answer = self.predict(m, md5)
            if label != self.labels[md5]:
                wrong.append((md5, label, answer))
        self.say(f"{m.label} served {len(traffic)} predictions on '{r.deployment}': {len(wrong)} wrong",
                 f"deployments/{r.deployments[m.label]['id']}")
        sent = 0
        for md5, label, answer in wrong[: self.max_feedback]:
            self.c.request("POST", f"/api/msm/serve/{r.deployment}/feedback",
                           json={"prediction_id": answer["prediction_id"],
                                 "model_version_id": answer["model_version_id"], "input_ref": md5,
                                 "prediction": label, "correct_label": self.labels[md5],
                                 "client_id": "mlife-demo", "device_id": "demo-device"})
            sent += 1
        self.say(f"reported {sent} wrong predictions as feedback (serving.feedback → BAM)")
        if not sent:
            self.note("no wrong prediction in this traffic: no serving badcase")
            return

        def filed() -> list[dict[str, Any]] | None:
            found = self._badcases(source="serving")
            return found if len(found) >= sent else None

        found = self.wait(f"BAM filing {sent} feedback reports as badcases (serving.feedback)", filed)
        r.serving_badcases = [str(b["id"]) for b in found]
        self.say(f"serving.feedback → BAM: {len(found)} badcases (source serving)", f"badcases/{found[0]['id']}")

    def _badcase_rows(self, document_id: str) -> set[str]:
        ids: set[str] = set()
        offset = 0
        while True:
            page = self.c.request("GET", f"/api/dam/documents/{document_id}/rows",
                                  params={"limit": 5000, "offset": offset})
            for row in page["items"]:
                if row.get("extra", {}).get("badcase_id"):
                    ids.add(str(row["extra"]["badcase_id"]))
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return ids

    def add_to_test_data(self) -> None:
        r = self.r
        ids = sorted(set(r.testing_badcases) | set(r.serving_badcases))
        for i in range(0, len(ids), 1000):
            self.c.add_to_test_data(ids[i:i + 1000])
        self.say(f"{len(ids)} badcases added to test data (badcase.test_data_requested → DAM)", "badcases")

        def in_test_set() -> dict[str, Any] | None:
            docs = self.c.request("GET", "/api/dam/documents", params={"kind": BADCASE_TEST_SET_KIND})
            for d in docs:
                if set(ids) <= self._badcase_rows(str(d["id"])):
                    return d
            return None

        doc = self.wait("DAM adding the badcases to its badcase test set", in_test_set)
        self.say(f"DAM's '{doc['name']}' document holds them", f"data/documents/{doc['id']}")
        g = self.c.group_dataset(f"badcases-{r.run}", [str(doc["id"])], split={"test": 1.0}, stratify=False)
        ds = g["datasets"][0]
        if not ds.get("is_badcase_test_set"):
            raise Stalled(f"DAM did not mark dataset {ds['id']} as a badcase test set")
        self.wait("MTT taking the badcase test set (dataset.grouped)",
                  lambda: self._task_with_dataset("test", str(ds["id"])))
        r.badcase_dataset_id = str(ds["id"])
        self.say(f"grouped as the badcase test set ({ds['item_count']} items): MTT tests every new version on it",
                 f"data/documents/{doc['id']}")

    def show_badcase_outcomes(self, m: Trained) -> None:
        o = m.version.get("badcase_outcomes", {})
        self.note(f"{m.label} on the badcase test set: {o.get('passed', 0)} passed, {o.get('failed', 0)} failed")

    def blocked_by_gate(self, m: Trained) -> None:
        r = self.r
        try:
            d = self.c.deploy(r.deployment, [str(m.version["id"])])
        except MLifeAPIError as exc:
            if exc.status != 409 or exc.error != "GateBlocked":
                raise
            detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
            r.blocked = detail
            regressed = detail.get("regressed_badcases", [])
            self.say(f"{m.label}: the gate BLOCKED the deployment: {'; '.join(detail.get('reasons', []))}",
                     f"deployments/{detail.get('deployment_id')}")
            self.note(f"{len(regressed)} regressed badcases, e.g. "
                      + ", ".join(self.link(f"badcases/{b}") for b in regressed[:3]))
            return
        raise Stalled(f"{m.label}: the gate let a regressing model through (deployment {d['id']}, gate {d['gate']})")

    def final_predict(self, m: Trained) -> None:
        r = self.r
        sample = self._spread(self._manifest(r.test_dataset_id), 20)
        correct = 0
        for md5 in sample:
            label, answer = self.predict(m, md5)
            correct += label == self.labels[md5]
            r.final_predictions.append({"md5": md5, "label": label, "truth": self.labels[md5],
                                        "model_version": answer["model_version"]})
        self.say(f"{m.label} answers on '{r.deployment}': {correct}/{len(sample)} test images right",
                 f"deployments/{r.deployments[m.label]['id']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlife demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="gateway URL (default MLIFE_URL, then `mlife login`'s)")
    parser.add_argument("--token", default=None, help="API token (default MLIFE_TOKEN, then `mlife login`'s)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the PNGs are written (default $MLIFE_HOME/demo or ~/.cache/mlife/demo)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one step may take")
    args = parser.parse_args(argv)
    workdir = args.workdir or (Path(os.environ["MLIFE_HOME"]) / "demo" if os.environ.get("MLIFE_HOME")
                               else Path.home() / ".cache" / "mlife" / "demo")
    client = Client.from_env(args.url, args.token)
    try:
        Demo(client, workdir=workdir, timeout=args.timeout, out=lambda s: print(s, flush=True)).run()
    except Stalled as exc:
        print(f"mlife demo: {exc}", file=sys.stderr)
        return 1
    except MLifeAPIError as exc:
        print(f"mlife demo: the API refused a step: {exc}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, OSError) as exc:  # connection refused, …
        print(f"mlife demo: cannot reach MLife at {client.url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
