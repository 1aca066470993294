"""The closed loop of one function, through the gateway's public API only:

 1. its data into DAM (files uploaded with the MD5 precheck, or a plain table), one document, grouped into
    train/test for the function (→ dataset.grouped → MTT makes a training task);
 2. v1, a weak model, trained with the function's example code → model.uploaded → MSM registers it (with its
    function) → MTT tests it on its test split → testing.completed → BAM files its mispredictions;
 3. v1 deployed (nothing in production yet: the gate passes), made `production`; predictions on traffic, the
    wrong ones reported as feedback with the served input (→ badcases, source serving);
 4. the badcases added to test data → DAM appends them to the function's own badcase test set and freezes it
    (→ dataset.grouped) → MSM has production tested on it;
 5. v2 fixes most of them: tested on the badcase test set and its split, deployed, `production` → BAM marks
    what production now passes `fixed`;
 6. v1 again: the gate blocks it (it fails badcases that production fixed);
 7. v3 is requested before it was ever tested: the request waits (`awaiting_tests`), is tested, is blocked;
 8. v4: a threshold on the set where it scores lower blocks it and names that set; with a threshold it meets
    it passes, is deployed, `production`, and answers.

Every wait has a timeout and names the step that stalled."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from mlife import steps
from mlife.client import Client, MLifeAPIError, zip_folder

T = TypeVar("T")
BADCASE_TEST_SET = "badcase test set"


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
    function: str
    model: str
    deployment: str
    document_id: str = ""
    train_dataset_id: str = ""
    test_dataset_id: str = ""
    badcase_dataset_id: str = ""
    testing_badcases: list[str] = field(default_factory=list)
    serving_badcases: list[str] = field(default_factory=list)
    fixed_badcases: list[str] = field(default_factory=list)
    models: dict[str, Trained] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocked: dict[str, Any] = field(default_factory=dict)  # v3: the request that waited for its tests
    blocked_v1: dict[str, Any] = field(default_factory=dict)  # v1 requested again after v2 became production
    awaited: list[dict[str, Any]] = field(default_factory=list)  # v3's evidence while it waited
    threshold_block: dict[str, Any] = field(default_factory=dict)
    final_predictions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Item:
    id: str  # the DAM file MD5, or the table row's id in the manifest
    truth: str
    md5: str | None = None
    path: Path | None = None
    features: dict[str, float] | None = None


class FunctionLoop:
    """One function's loop. Subclasses say what the data is, how a sample becomes a model input and which
    parameters make a weak, a good and a worse model (functions.py)."""

    function = "function"
    example: Path = Path()
    weak: dict[str, Any] = {}
    good: dict[str, Any] = {}
    worse: dict[str, Any] = {}
    feedback_with_inputs = True  # send the served input tensor with feedback (else the image's DAM MD5)

    def __init__(self, client: Client, *, workdir: Path, timeout: float = 600.0, run: str | None = None,
                 out: Callable[[str], None] = print, traffic: int = 100, feedback: int = 6) -> None:
        self.c = client
        self.workdir = workdir
        self.timeout = timeout
        self.traffic, self.max_feedback = traffic, feedback
        run = run or time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        name = f"{self.function}-{run}"
        self.r = LoopResult(run=run, function=name, model=name, deployment=name)
        self._out = out
        self.step = 0
        self.items: dict[str, Item] = {}

    # --- what a function says -----------------------------------------------------------------------

    def prepare(self) -> None:
        raise NotImplementedError

    def import_data(self) -> None:
        raise NotImplementedError

    def model_input(self, item: Item) -> list[float]:
        raise NotImplementedError

    # --- output and waiting -----------------------------------------------------------------------

    def out(self, text: str) -> None:
        self._out(f"{self.function}: {text}" if self.function != "digits" else text)

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
                raise Stalled(f"{self.function}: stalled at step {self.step}: {what} did not happen within "
                              f"{limit:.0f}s{extra}")
            time.sleep(interval)

    # --- the steps --------------------------------------------------------------------------------

    def run(self) -> LoopResult:
        started = time.monotonic()
        r = self.r
        self.out(f"MLife demo (run {r.run}, function '{r.function}') against {self.c.url}")
        self.prepare()
        self.import_data()
        self.group()
        v1 = self.train("v1", self.weak, first=True, why="a weak model")
        self.testing_badcases(v1)
        self.deploy(v1)
        self.serve_and_feedback(v1)
        self.add_to_test_data()
        v2 = self.train("v2", self.good, why="a stronger model that should fix them")
        self.deploy(v2)
        self.fixed_by_production(v2)
        r.blocked_v1 = self.blocked_by_gate(v1, why="v1 again, which fails badcases production fixed")
        self.train("v3", self.worse, why="a deliberately worse model", request_early=True)
        v4 = self.train("v4", self.good, why="the good parameters again: the fix")
        self.deploy(v4, requested=self.thresholds_name_their_set(v4))
        self.final_predict(v4)
        r.seconds = time.monotonic() - started
        self.out(f"The loop is closed (run {r.run}, {r.seconds:.0f}s): badcases from testing "
                 f"({len(r.testing_badcases)}) and serving ({len(r.serving_badcases)}), {len(r.fixed_badcases)} fixed "
                 f"by v2; the gate blocked v1 again ({len(r.blocked_v1.get('regressed_badcases', []))} regressed) and "
                 f"v3 after testing it ({len(r.blocked.get('regressed_badcases', []))}); v4 serves '{r.deployment}'.")
        return r

    def group(self) -> None:
        g = self.c.group_dataset(self.r.model, [self.r.document_id], split={"train": 0.8, "test": 0.2},
                                 stratify=True, seed=0, function=self.r.function)
        by = {d["purpose"]: d for d in g["datasets"]}
        self.r.train_dataset_id, self.r.test_dataset_id = str(by["train"]["id"]), str(by["test"]["id"])
        self.say(f"grouped for function '{self.r.function}': train {by['train']['item_count']} items, test "
                 f"{by['test']['item_count']} items (dataset.grouped → MTT)", f"data/documents/{self.r.document_id}")

    def _tasks(self, kind: str) -> list[dict[str, Any]]:
        return self.c.list_tasks(kind=kind, limit=500)

    def _task_with_dataset(self, kind: str, dataset_id: str) -> dict[str, Any] | None:
        for t in self._tasks(kind):
            if any(str(d.get("dataset_id")) == dataset_id for d in t.get("datasets", [])):
                return t
        return None

    def _start_training(self, label: str, params: dict[str, Any], first: bool) -> str:
        """v1 takes the training task `dataset.grouped` made in MTT (it waits for its code); later versions are
        created with their code, command and parameters in one call."""
        r = self.r
        all_params = {**params, "model_name": r.model}
        if first:
            task = self.wait("MTT creating a training task from dataset.grouped",
                             lambda: self._task_with_dataset("train", r.train_dataset_id))
            if task["status"] in ("draft", "ready") and task.get("function") == r.function:
                tid = str(task["id"])
                with zip_folder(self.example) as archive:
                    self.c.request("POST", f"/api/mtt/tasks/{tid}/code", content=archive.read(),
                                   headers={"Content-Type": "application/zip"})
                self.c.request("PATCH", f"/api/mtt/tasks/{tid}", json={"command": "python train.py",
                                                                       "params": all_params})
                self.c.run_task(tid)
                return tid
        task = self.c.create_task("train", [{"dataset_id": r.train_dataset_id, "purpose": "train"},
                                            {"dataset_id": r.test_dataset_id, "purpose": "test"}],
                                  code_dir=self.example, command="python train.py", params=all_params,
                                  function=r.function, name=f"{r.model} {label}", run=True)
        return str(task["id"])

    def train(self, label: str, params: dict[str, Any], *, why: str, first: bool = False,
              request_early: bool = False) -> Trained:
        r = self.r
        tid = self._start_training(label, params, first)
        self.say(f"{label}: training task for {why} — code examples/{self.example.name} uploaded, queued",
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
                            lambda: self._version_of_task(tid), interval=0.1 if request_early else 1.0)
        self.say(f"{label}: model.uploaded → MSM registered {r.model} v{version['version']} for function "
                 f"'{version.get('function') or self.c.model(r.model).get('function')}'", f"models/{r.model}")
        if request_early:  # before MTT has tested it: the gate must wait for its evidence
            self.awaiting_then_blocked(label, version)
        needed = {r.test_dataset_id} | ({r.badcase_dataset_id} if r.badcase_dataset_id else set())

        def tested() -> dict[str, Any] | None:
            v = self.c.request("GET", f"/api/msm/model-versions/{version['id']}")
            return v if needed <= {str(t.get("dataset_id")) for t in v.get("testing", [])} else None

        what = "its test split" + (" and the function's badcase test set" if r.badcase_dataset_id else "")
        detail = self.wait(f"{label}: MTT's regression testing of v{version['version']} on {what} "
                           f"(model.registered → testing.completed → MSM)", tested)
        for t in detail["testing"]:
            kind = BADCASE_TEST_SET if str(t.get("dataset_id")) == r.badcase_dataset_id else "test split"
            acc = t["metrics"].get("accuracy")
            self.say(f"{label}: tested on the {kind}: {t['passed']}/{t['samples']} correct"
                     + (f" (accuracy {acc:.3f})" if acc is not None else ""), f"tasks/{t['task_id']}")
        trained = Trained(label, params, task, detail)
        r.models[label] = trained
        return trained

    def _version_of_task(self, task_id: str) -> dict[str, Any] | None:
        return steps.version_of_task(self.c, self.r.model, task_id)

    def _badcases(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.c.iter_badcases(function=self.r.function, **filters))

    def testing_badcases(self, m: Trained) -> None:
        test = next(t for t in m.version["testing"] if str(t.get("dataset_id")) == self.r.test_dataset_id)
        expected = int(test["samples"]) - int(test["passed"])
        version = str(m.version["version"])

        def filed() -> list[dict[str, Any]] | None:
            found = self._badcases(source="testing", model_version=version)
            return found if len(found) >= expected else None

        found = self.wait(f"BAM filing {expected} mispredictions of {m.label} as badcases (testing.completed)", filed)
        self.r.testing_badcases = [str(b["id"]) for b in found]
        self.say(f"testing.completed → BAM: {len(found)} badcases of '{self.r.function}' from {m.label}'s "
                 "mispredictions (source testing, with their task)", "badcases")
        if found:
            self.note(f"e.g. {self.link('badcases/' + str(found[0]['id']))}")

    # --- deployments and the gate -------------------------------------------------------------------

    def request_deployment(self, m: Trained | dict[str, Any], **extra: Any) -> dict[str, Any]:
        """POST a deployment; a blocked one (409) is returned as its record, not raised."""
        vid = str(m.version["id"] if isinstance(m, Trained) else m["id"])
        return steps.request_deployment(self.c, self.r.deployment, [vid], **extra)

    def verdict(self, d: dict[str, Any], label: str) -> dict[str, Any]:
        """The deployment once the gate has decided (it may first wait for tests)."""
        def decided() -> dict[str, Any] | None:
            x = self.c.request("GET", f"/api/msm/deployments/{d['id']}")
            return None if x["status"] == "awaiting_tests" else x

        return self.wait(f"{label}: the gate deciding on deployment {d['id']} (awaiting its tests)", decided)

    def deploy(self, m: Trained, *, requested: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.r
        d = requested or self.verdict(self.request_deployment(m), m.label)
        if d["status"] == "blocked":
            raise Stalled(f"{m.label}: the gate blocked deployment {d['id']}: {d['gate'].get('reasons')}")
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
        probe = next(iter(self.items.values()))

        # MSM's API processes re-read their deployments in the background (a stale one may answer meanwhile)
        def serving() -> bool | None:
            return True if str(self.predict(m, probe)[1]["model_version"]) == str(m.version["version"]) else None

        self.wait(f"{m.label}: '{r.deployment}' answering with v{m.version['version']}", serving, interval=0.5)
        self.c.set_alias(r.model, "production", str(m.version["version"]), reason=f"mlife demo: {m.label} is live")
        self.note(f"{r.model} v{m.version['version']} is live at /api/msm/serve/{r.deployment}/predict "
                  f"and is now `production` (model.promoted → BAM)")
        return d

    def fixed_by_production(self, m: Trained) -> None:
        outcomes = m.version.get("badcase_outcomes", {})
        expected = int(outcomes.get("passed", 0))

        def fixed() -> list[dict[str, Any]] | None:
            found = self._badcases(status="fixed")
            return found if len(found) >= expected else None

        found = self.wait(f"BAM marking the {expected} badcases production {m.label} passes `fixed` "
                          "(model.promoted)", fixed)
        self.r.fixed_badcases = [str(b["id"]) for b in found]
        self.say(f"{m.label} is production: {len(found)} badcases of '{self.r.function}' are now fixed", "badcases")

    def blocked_by_gate(self, m: Trained, *, why: str) -> dict[str, Any]:
        d = self.verdict(self.request_deployment(m), m.label)
        if d["status"] != "blocked":
            raise Stalled(f"{m.label}: the gate let a regressing model through (deployment {d['id']}, {d['gate']})")
        regressed = d["gate"].get("regressed_badcases", [])
        self.say(f"{why}: the gate BLOCKED it: {'; '.join(d['gate'].get('reasons', []))}", f"deployments/{d['id']}")
        self.note(f"{len(regressed)} regressed badcases, e.g. "
                  + ", ".join(self.link(f"badcases/{b}") for b in regressed[:3]))
        return {"deployment_id": d["id"], **d["gate"]}

    def awaiting_then_blocked(self, label: str, version: dict[str, Any]) -> None:
        d = self.request_deployment(version)
        self.say(f"{label}: deployment requested before any test of v{version['version']}: {d['status']}"
                 + (f" — {len(d['gate'].get('evidence', []))} results awaited" if d["status"] == "awaiting_tests"
                    else ""), f"deployments/{d['id']}")
        if d["status"] == "awaiting_tests":
            self.r.awaited = list(d["gate"].get("evidence", []))
        final = self.verdict(d, label)
        if final["status"] != "blocked":
            raise Stalled(f"{label}: the gate let a regressing model through once tested ({final['gate']})")
        self.r.blocked = {"deployment_id": final["id"], "first_status": d["status"], **final["gate"]}
        self.say(f"{label}: tested, then BLOCKED: {'; '.join(final['gate'].get('reasons', []))}",
                 f"deployments/{final['id']}")

    def thresholds_name_their_set(self, m: Trained) -> dict[str, Any]:
        """A threshold applies to the set it names: one the candidate misses on the set where it scores lower
        blocks it and says so; one it meets passes (that request is returned)."""
        r = self.r
        acc = {("badcase_test_set" if str(t.get("dataset_id")) == r.badcase_dataset_id else "test_split"):
               t["metrics"].get("accuracy") for t in m.version["testing"]}
        low_set = min(acc, key=lambda k: acc[k] if acc[k] is not None else 2.0)
        low, high = acc[low_set], max(v for v in acc.values() if v is not None)
        # a bar between the two sets' scores; when both scored 1.0 no minimum can be missed: a maximum then
        bar = (low + high) / 2 if high > low else min(1.0, low + 0.001)
        bound = {"min": bar} if bar > low else {"max": low - 0.001}
        d = self.verdict(self.request_deployment(m, thresholds={f"{low_set}.accuracy": bound}), m.label)
        named = low_set.replace("_", " ")  # the reason names the set: "... on the badcase test set ..."
        if d["status"] != "blocked" or not any(named in reason for reason in d["gate"].get("reasons", [])):
            raise Stalled(f"{m.label}: the threshold {bound} on {low_set}.accuracy ({low}) did not block: {d['gate']}")
        r.threshold_block = {"deployment_id": d["id"], "set": low_set, "bound": bound, **d["gate"]}
        self.say(f"{m.label}: {low_set}.accuracy {bound} blocks it ({low_set} scored {low:.3f}): "
                 f"{'; '.join(d['gate']['reasons'])}", f"deployments/{d['id']}")
        return self.verdict(self.request_deployment(m, thresholds={f"{low_set}.accuracy": {"min": low - 0.01}}),
                            m.label)

    # --- serving and feedback ------------------------------------------------------------------------

    def _manifest(self, dataset_id: str) -> list[dict[str, Any]]:
        r = self.c.http.get(f"/api/dam/datasets/{dataset_id}/manifest")  # JSON lines
        if r.status_code >= 400:
            self.c._answer(r)
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]

    def _spread(self, manifest: list[dict[str, Any]], n: int) -> list[Item]:
        """n items spread over a manifest (manifests are ordered by class)."""
        known = [self.items[k] for it in manifest for k in (it.get("md5"), it.get("id")) if k in self.items]
        step = max(1, len(known) // max(n, 1))
        return known[::step][:n]

    def _input_name(self, m: Trained) -> str:
        inputs = m.version.get("signature", {}).get("inputs", [])
        return str(inputs[0]["name"]) if inputs else "X"

    def predict(self, m: Trained, item: Item) -> tuple[str, dict[str, Any]]:
        answer = self.c.predict(self.r.deployment, {self._input_name(m): self.model_input(item)},
                                client_id="mlife-demo")
        return steps.predicted_label(answer["outputs"]), answer

    def serve_and_feedback(self, m: Trained) -> None:
        r = self.r
        traffic = self._spread(self._manifest(r.train_dataset_id), self.traffic)
        wrong = []
        for item in traffic:
            label, answer = self.predict(m, item)
            if label != item.truth:
                wrong.append((item, label, answer))
        self.say(f"{m.label} served {len(traffic)} predictions on '{r.deployment}': {len(wrong)} wrong",
                 f"deployments/{r.deployments[m.label]['id']}")
        sent = 0
        for item, label, answer in wrong[: self.max_feedback]:
            body: dict[str, Any] = {"prediction_id": answer["prediction_id"],
                                    "model_version_id": answer["model_version_id"], "prediction": label,
                                    "correct_label": item.truth, "client_id": "mlife-demo", "device_id": "demo-device"}
            if self.feedback_with_inputs or item.md5 is None:
                body["inputs"] = {self._input_name(m): self.model_input(item)}
            else:
                body["input_ref"] = item.md5
            self.c.request("POST", f"/api/msm/serve/{r.deployment}/feedback", json=body)
            sent += 1
        how = "with the served input tensor" if self.feedback_with_inputs else "with the image's MD5"
        self.say(f"reported {sent} wrong predictions as feedback {how} (serving.feedback → BAM)")
        if not sent:
            self.note("no wrong prediction in this traffic: no serving badcase")
            return

        def filed() -> list[dict[str, Any]] | None:
            found = self._badcases(source="serving")
            return found if len(found) >= sent else None

        found = self.wait(f"BAM filing {sent} feedback reports as badcases (serving.feedback)", filed)
        r.serving_badcases = [str(b["id"]) for b in found]
        self.say(f"serving.feedback → BAM: {len(found)} badcases (source serving, with their deployment)",
                 f"badcases/{found[0]['id']}")

    def add_to_test_data(self) -> None:
        r = self.r
        ids = sorted(set(r.testing_badcases) | set(r.serving_badcases))
        for i in range(0, len(ids), 1000):
            self.c.add_to_test_data(ids[i:i + 1000])
        self.say(f"{len(ids)} badcases added to test data (badcase.test_data_requested → DAM)", "badcases")
        name = f"{BADCASE_TEST_SET}: {r.function}"

        def frozen() -> dict[str, Any] | None:
            for ds in self.c.objects("GET", "/api/dam/datasets", params={"name": name}):
                if ds.get("is_badcase_test_set") and int(ds.get("item_count", 0)) >= len(ids):
                    return ds
            return None

        ds = self.wait(f"DAM appending them to '{name}' and freezing it (dataset.grouped)", frozen)
        r.badcase_dataset_id = str(ds["id"])
        self.say(f"'{name}' v{ds['version']} holds {ds['item_count']} items: MTT tests every new version of "
                 f"'{r.function}' on it, and MSM's gate waits for that", "data")

    def final_predict(self, m: Trained) -> None:
        r = self.r
        sample = self._spread(self._manifest(r.test_dataset_id), 20)
        correct = 0
        for item in sample:
            label, answer = self.predict(m, item)
            correct += label == item.truth
            r.final_predictions.append({"id": item.id, "label": label, "truth": item.truth,
                                        "model_version": answer["model_version"]})
        self.say(f"{m.label} answers on '{r.deployment}': {correct}/{len(sample)} test samples right",
                 f"deployments/{r.deployments[m.label]['id']}")
