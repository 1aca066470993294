"""`mlife`: the command line. `mlife up` runs the whole platform on this machine; the other commands
talk to a running MLife through the gateway, as `MLIFE_URL` with `MLIFE_TOKEN` (or after
`mlife login`, which keeps a token in ~/.config/mlife/config.json, mode 0600). `--json` prints the
API's answer as JSON, for scripts.

Exit codes: 0 done; 1 partly done (some files or rows failed: listed); 2 an error (the API's, a missing
file, an unreachable MLife; a message, never a traceback); 3 the deployment gate blocks; 141 the reader of
the output went away (`mlife badcase list | head -1`), quietly."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from mlife.client import Client

FILTERS = ("q", "function", "system_version", "model_name", "model_version", "status", "severity", "source",
           "label", "prediction", "tag", "owner", "task_id", "deployment_id", "model_version_id")


class CLIError(Exception):
    """A mistake in the command's input: printed as `error: …`, exit 2."""


def _client(args: argparse.Namespace) -> Client:
    from mlife.client import Client

    return Client.from_env(url=args.url, token=args.token)


def _print(args: argparse.Namespace, data: Any, human: Any = None) -> None:
    if args.json or human is None:
        print(json.dumps(data, indent=None if args.json else 2, default=str))
    else:
        print(human(data) if callable(human) else human)


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[str(r.get(c, "") if r.get(c) is not None else "") for c in cols] for r in rows]
    widths = [min(60, max(len(c), *(len(row[i]) for row in cells))) for i, c in enumerate(cols)]

    def line(vals: list[str]) -> str:
        return "  ".join(v[:60].ljust(w) for v, w in zip(vals, widths, strict=True))

    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in FILTERS if getattr(args, k, None) is not None}


def _add_filters(p: argparse.ArgumentParser) -> None:
    for name in FILTERS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name)


def _data_ref(text: str) -> dict[str, str]:
    kind, sep, value = text.partition(":")
    if not sep or kind.strip().lower() not in ("md5", "key", "url") or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not md5:<hex>, key:<object key> or url:<http(s) URL>")
    return {"kind": kind.strip().lower(), "value": value.strip()}


def _json_text(text: str, what: str) -> Any:
    """A JSON argument, or `@file` holding it (read when the command runs: a missing file is its error)."""
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CLIError(f"{what} is not JSON: {exc}") from exc


def _label(text: str | None) -> Any:
    """A label as `badcase import` reads a cell: JSON when it starts with { or [, else the text ("7" stays "7")."""
    if text is None or text.strip()[:1] not in ("{", "["):
        return text
    return _json_text(text, "the label")


def _progress(enabled: bool) -> Callable[[Any, int, int], None]:
    """The upload progress bar, on standard error, and only when that is a terminal (never into a log or a pipe)."""
    enabled = enabled and sys.stderr.isatty()

    def show(summary: Any, done: int, total: int) -> None:
        if not enabled:
            return
        width = 30
        frac = done / total if total else 1.0
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        sys.stderr.write(f"\r[{bar}] {frac:6.1%}  {summary.uploaded} uploaded, {summary.skipped} already "
                         f"stored, {len(summary.failed)} failed ")
        sys.stderr.flush()
        if done >= total:
            sys.stderr.write("\n")

    return show


# --- commands ---------------------------------------------------------------------------------------

def cmd_login(args: argparse.Namespace) -> int:
    from mlife.client import Client, load_config, save_config

    url = args.url or os.environ.get("MLIFE_URL") or load_config().get("url") or "http://127.0.0.1:8000"
    username = args.username or input("User name: ")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    token = Client.login(url, username, password, token_name=f"mlife-cli@{socket.gethostname()}")
    path = save_config(url, token)
    _print(args, {"url": url, "username": username, "config": str(path)}, f"Logged in to {url}; token kept in {path}")
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    with _client(args) as c:
        me = c.me()
    _print(args, me, lambda m: f"{m['username']} ({m['role']})")
    return 0


def _report(args: argparse.Namespace) -> dict[str, Any]:
    """`badcase add`'s options as the fields of a report (the fields a row of `badcase import` has)."""
    data = list(args.data or []) + ([{"kind": "md5", "value": args.data_md5}] if args.data_md5 else [])
    return {"function": args.function, "prediction": args.prediction, "ground_truth": args.ground_truth,
            "description": args.description, "severity": args.severity, "model_name": args.model_name,
            "model_version": args.model_version, "system_version": args.system_version, "tags": args.tag or None,
            "task_id": args.task_id, "deployment_id": args.deployment_id, "model_version_id": args.model_version_id,
            "data": data or None,
            "features": _json_text(args.features, "--features") if args.features else None}


def _imported(args: argparse.Namespace, r: dict[str, Any]) -> int:
    _print(args, r, lambda r: f"{r['rows']} rows: {r['created']} created, {r['merged']} merged, {r['failed']} failed")
    if r["failed"] and not args.json:
        for e in r["errors"]:
            print(f"  row {e['row']} (line {e['line']}): {e['error']}", file=sys.stderr)
        if r.get("errors_not_shown"):
            print(f"  … and {r['errors_not_shown']} more failed rows", file=sys.stderr)
    return 1 if r["failed"] else 0


def cmd_badcase(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "add":
            b = c.report_badcase(file=Path(args.file) if args.file else None, **_report(args))
            _print(args, b, lambda b: (f"merged into {b['merged_into']} (seen {b['frequency']} times)"
                                       if b.get("merged_into") else f"recorded {b['id']}"))
        elif args.action == "import":
            return _imported(args, c.import_badcases(Path(args.path), format=args.format))
        elif args.action == "add-to-test-data":
            if bool(args.ids) == bool(_filters(args)):
                raise CLIError("give badcase ids, or filters that select them (e.g. --function digits), not both")
            r = c.add_to_test_data(args.ids or None, **_filters(args))
            _print(args, r, lambda r: "\n".join([f"{r['added']} badcases sent to their function's badcase test set",
                                                 *(f"  skipped {s['id']}: {s['reason']}" for s in r["skipped"])]))
        elif args.action == "list":
            items = list(c.iter_badcases(**_filters(args))) if args.all else \
                c.list_badcases(limit=args.limit, sort=args.sort, **_filters(args))["items"]
            _print(args, items, lambda rows: _table(rows, ["id", "function", "status", "severity", "priority",
                                                           "frequency", "description"]))
        elif args.action == "preview":
            return _preview(args, c)
        elif args.action == "stats":
            if args.weekly:
                w = c.weekly_stats(weeks=args.weeks, **_filters(args))
                _print(args, w, lambda w: _table(w["series"], ["week", "reported", "fixed", "regressed", "open"]))
            else:
                s = c.badcase_stats(args.group_by, limit=args.limit, **_filters(args))
                _print(args, s, lambda s: _table(
                    [{**g["key"], "count": g["count"], "share": f"{g['share']:.1%}"} for g in s["groups"]],
                    [*s["group_by"], "count", "share"]) + f"\ntotal {s['total']}")
    return 0


def _preview(args: argparse.Namespace, c: Client) -> int:
    params = {k: getattr(args, k) for k in ("size", "view", "start", "end", "at", "frames")}
    ctype, body = c.badcase_preview(args.id, **params)
    if args.output:
        Path(args.output).write_bytes(body)
        _print(args, {"id": args.id, "content_type": ctype, "bytes": len(body), "output": args.output},
               f"{ctype}, {len(body)} bytes → {args.output}")
    elif "json" in ctype:
        _print(args, json.loads(body))
    else:
        raise CLIError(f"the preview is {ctype}: give -o FILE to write it")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    with _client(args) as c:
        s = c.upload_dir(Path(args.dir), workers=args.workers, prefix=args.prefix or "",
                         progress=_progress(not args.no_progress and not args.json))
    data = {"files": s.files, "uploaded": s.uploaded, "skipped": s.skipped, "bytes_uploaded": s.bytes_uploaded,
            "failed": s.failed, "results": s.results}
    _print(args, data, f"{s.files} files: {s.uploaded} uploaded, {s.skipped} already stored (MD5 precheck), "
                       f"{len(s.failed)} failed")
    return 1 if s.failed else 0


def cmd_document(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "import":
            d = c.import_document(Path(args.path), name=args.name, format=args.format, description=args.description,
                                  kind=args.kind, label_column=args.label_column)
            _print(args, d, lambda d: f"imported document {d['id']} ({d.get('row_count', '?')} rows)")
        elif args.action == "export":
            out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
            try:
                n = c.export_document(args.id, out, format=args.format, version=args.version)
            finally:
                if args.output:
                    out.close()
            if args.output:
                _print(args, {"bytes": n, "output": args.output}, f"wrote {n} bytes to {args.output}")
        elif args.action == "list":
            _print(args, c.list_documents(q=args.q), lambda d: _table(d, ["id", "name", "row_count", "current_version"]))
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    split = dict((k, float(v)) for k, v in (p.split("=") for p in args.split.split(","))) if args.split else None
    with _client(args) as c:
        d = c.group_dataset(args.name, args.document, split=split, seed=args.seed, function=args.function)
    _print(args, d, lambda d: json.dumps(d, indent=2))
    return 0


def cmd_task(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "create":
            if args.code and not Path(args.code).is_dir():  # before any request
                raise CLIError(f"--code {args.code}: " + ("not a folder" if Path(args.code).exists() else
                                                          "no such folder"))
            params = {}
            for p in args.param:
                key, sep, value = p.partition("=")
                if not sep:
                    raise CLIError(f"--param {p!r}: write KEY=JSON")
                params[key] = _json_text(value, f"--param {key}")
            t = c.create_task(args.kind, [_dataset_ref(c, d) for d in args.dataset], code_dir=args.code,
                              command=args.command, params=params or None, function=args.function, name=args.name,
                              model_name=args.model_name, code_location=args.code_location, run=args.run or None)
            _print(args, t, lambda t: f"task {t['id']} ({t.get('status')})")
        elif args.action == "run":
            _print(args, c.run_task(args.id), lambda t: f"task {t['id']} {t.get('status')}")
        elif args.action == "list":
            r = c.list_tasks(kind=args.kind, status=args.status, function=args.function)
            items = r if isinstance(r, list) else r.get("items", [])
            _print(args, items, lambda rows: _table(rows, ["id", "kind", "name", "function", "status",
                                                           "created_at"]))
        elif args.action == "logs":
            offset = 0
            while True:
                chunk = c.task_logs(args.id, offset=offset)
                if args.json:
                    print(json.dumps(chunk))
                else:
                    sys.stdout.write(chunk.get("text", ""))
                    sys.stdout.flush()
                offset = chunk.get("next_offset", offset)
                if not args.follow or chunk.get("complete"):
                    break
                import time

                time.sleep(2)
        elif args.action == "report":
            _print(args, c.task_report(args.id), lambda r: json.dumps(r, indent=2))
    return 0


def _dataset_ref(c: Any, dataset_id: str) -> dict[str, Any]:
    """The dataset with its manifest key from DAM, so MTT can read it even before it saw `dataset.grouped`."""
    from mlife.client import MLifeAPIError

    ref: dict[str, Any] = {"dataset_id": dataset_id}
    try:
        found = c.request("GET", f"/api/dam/datasets/{dataset_id}")
        if isinstance(found, dict) and found.get("manifest_key"):
            ref["manifest_key"] = found["manifest_key"]
    except MLifeAPIError:
        pass  # MTT says what is wrong with the dataset
    return ref


def cmd_model(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "list":
            r = c.list_models()
            items = r if isinstance(r, list) else r.get("items", [])
            _print(args, items, lambda rows: _table(rows, ["name", "function", "updated_at", "description"]))
        elif args.action == "alias":
            _print(args, c.set_alias(args.name, args.alias, args.version, reason=args.reason or ""),
                   lambda a: f"{args.name}@{args.alias} -> {args.version}")
        elif args.action == "set-function":
            _print(args, c.set_model_function(args.name, args.function),
                   lambda m: f"{m['name']} serves the function {m['function']}")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    with _client(args) as c:
        v = c.model_version(args.model, args.version)
        g = c.gate_preview(v["id"], metric=args.metric, min=args.min, max=args.max)
    g = {"model": args.model, "version": v["version"], "model_version_id": v["id"], **g}

    def human(g: dict[str, Any]) -> str:
        verdict = "passes the gate" if g.get("passed") else "the gate would block it"
        lines = [f"{g['model']} v{g['version']}: {verdict}"]
        lines += [f"  - {r}" for r in g.get("reasons", [])]
        for key in ("regressed_badcases", "untested_badcases", "failing_badcases"):
            if g.get(key):
                lines.append(f"  {key.replace('_', ' ')}: {len(g[key])}")
        return "\n".join(lines)

    _print(args, g, human)
    return 0 if g.get("passed") else 3


def cmd_deploy(args: argparse.Namespace) -> int:
    from mlife.client import MLifeAPIError

    if args.deployment is not None:
        if args.name != "rollback":
            raise CLIError(f"unexpected argument {args.deployment!r} (to roll back: mlife deploy rollback DEPLOYMENT)")
        if not args.reason:
            raise CLIError("give the --reason of the rollback")
        with _client(args) as c:
            restored = c.rollback(args.deployment, args.reason)
        _print(args, restored, lambda d: f"rolled back: deployment {d['id']} ({d['name']}) is {d['status']} again")
        return 0
    if not args.version:
        raise CLIError("give the deployment to roll back: mlife deploy rollback DEPLOYMENT --reason R"
                       if args.name == "rollback" else "give the model version(s) to deploy: --version ID")
    with _client(args) as c:
        try:
            d = c.deploy(args.name, args.version, function=args.function, target=args.target,
                         override_reason=args.override_reason)
        except MLifeAPIError as exc:
            if exc.status == 409 and isinstance(exc.detail, dict):
                _print(args, {"blocked": True, **exc.detail}, lambda d: "blocked by the gate:\n  " +
                       "\n  ".join(map(str, d.get("reasons", []))))
                return 3
            raise
        if args.wait and d.get("status") == "awaiting_tests":
            d = _await_verdict(c, d, args.wait)
    _print(args, d, lambda d: f"deployment {d['id']} {d['status']}" + (
        ":\n  " + "\n  ".join(map(str, d.get("gate", {}).get("reasons", []))) if d.get("status") == "blocked" else ""))
    return 3 if d.get("status") == "blocked" else 0


def _await_verdict(c: Any, d: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll a deployment that waits for its tests until the gate decided (or `timeout` seconds passed)."""
    import time

    deadline = time.monotonic() + timeout
    while d.get("status") == "awaiting_tests" and time.monotonic() < deadline:
        time.sleep(1.0)
        d = c.request("GET", f"/api/msm/deployments/{d['id']}")
    return d


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """List a service's dead letters, or re-drive one (by id) or all pending of a consumer; exit 1 if any failed."""
    base = f"/api/{args.service}/dead-letters"
    with _client(args) as c:
        if args.action == "list":
            rows = c.objects("GET", base, params={"consumer": args.consumer, "state": args.state, "limit": args.limit})
            _print(args, rows, lambda rs: _table(rs, ["id", "consumer", "subject", "reason", "created_at", "redrive_note"]))
            return 0
        if args.id:
            results = c.objects("POST", f"{base}/redrive", params={"id": args.id})
        elif args.consumer:
            results = c.objects("POST", f"{base}/redrive", params={"consumer": args.consumer})
        else:
            raise CLIError("re-drive what? give a dead letter's ID, or --consumer for all of a consumer's")
    _print(args, results, lambda rs: "\n".join(f"{r['id']}: {r['outcome']}" + (f" ({r['error']})" if r.get("error") else "")
                                                for r in rs) or "nothing pending")
    return 1 if any(r["outcome"] == "failed" for r in results) else 0


SUBSCRIBERS = "/api/gateway/subscribers"


def _subscriber_id(c: Any, name: str) -> str:
    for row in c.objects("GET", SUBSCRIBERS):
        if row["name"] == name:
            return str(row["id"])
    raise CLIError(f"no subscriber named {name!r} (mlife subscribers list)")


def _credentials_text(r: dict[str, Any]) -> str:
    c = r.get("credentials", r)
    return (f"NATS {c['nats_url']}  user {c['nats_user']}  password {c['password']}\n"
            "(shown once; mlife.events.subscribe(..., user=USER, password=PASSWORD, bind=True) reads its durables)")


def _subscriber_body(args: argparse.Namespace) -> dict[str, Any]:
    where = {}
    for pair in args.filter or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--filter {pair!r} is not FIELD=VALUE")
        where[key.strip()] = value.strip()
    return {"name": args.name, "subjects": args.subject, "filter": where, "description": args.description or "",
            "deliver": "new" if args.new else "all"}


def cmd_subscribers(args: argparse.Namespace) -> int:
    """Outside subscribers of the event bus (maintainers): their NATS logins and durables."""
    with _client(args) as c:
        if args.action == "list":
            rows = c.objects("GET", SUBSCRIBERS)
            for row in rows:
                row["durables"] = ", ".join(f"{d['stream']}: {d['pending']} pending" for d in row["durables"])
            _print(args, rows, lambda rs: _table(rs, ["name", "nats_user", "subjects", "durables", "created_by"]))
        elif args.action == "create":
            _print(args, c.object("POST", SUBSCRIBERS, json=_subscriber_body(args)), _credentials_text)
        elif args.action == "rotate":
            _print(args, c.object("POST", f"{SUBSCRIBERS}/{_subscriber_id(c, args.name)}/rotate"), _credentials_text)
        elif args.action == "delete":
            c.request("DELETE", f"{SUBSCRIBERS}/{_subscriber_id(c, args.name)}")
            _print(args, {"deleted": args.name}, f"{args.name}: its durables and its NATS login are gone")
        else:
            body = {"since": args.since} if args.since else {"stream": args.stream, "sequence": args.sequence}
            r = c.object("POST", f"{SUBSCRIBERS}/{_subscriber_id(c, args.name)}/replay", json=body)
            _print(args, r, f"{args.name}: re-delivered from " + (r["since"] or f"{r['stream']} #{r['sequence']}"))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    inputs = _json_text(args.input, "--input")
    with _client(args) as c:
        _print(args, c.predict(args.deployment, inputs), lambda r: json.dumps(r["outputs"]))
    return 0


def _input_name(c: Any, deployment: str, version_id: str | None) -> str:
    """The one input of the model a deployment serves (for a .npy file, which holds one unnamed array)."""
    version_id = version_id or next(v["model_version_id"] for v in c.deployment(deployment)["versions"]
                                    if v.get("role", "primary") == "primary")
    signature = c.request("GET", f"/api/msm/model-versions/{version_id}")["signature"]
    names = [i["name"] for i in signature.get("inputs", [])]
    if len(names) != 1:
        raise CLIError(f"the model has the inputs {', '.join(names)}: give --input-name, or an .npz file with an "
                       "array per input name")
    return str(names[0])


def cmd_feedback(args: argparse.Namespace) -> int:
    from mlife.client import read_inputs

    with _client(args) as c:
        inputs = _json_text(args.inputs, "--inputs") if args.inputs else None
        if args.input_file:
            name = args.input_name
            Path(args.input_file).stat()  # a missing file is said before any request
            if not name and args.input_file.lower().endswith(".npy"):
                name = _input_name(c, args.deployment, args.model_version_id)
            try:
                inputs = read_inputs(args.input_file, name)
            except ValueError as exc:
                raise CLIError(str(exc)) from exc
        r = c.feedback(args.deployment, _label(args.correct_label), inputs=inputs, input_ref=args.input_ref,
                       prediction_id=args.prediction_id, prediction=_label(args.prediction),
                       model_version_id=args.model_version_id, client_id=args.client_id, device_id=args.device_id)
    _print(args, r, lambda r: f"feedback {r['id']} on {r['model_name']} v{r['model_version']}: BAM files it as a "
                              "badcase (source serving)")
    return 0


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _group(sub: Subcommands, name: str, help: str, func: Callable[[argparse.Namespace], int]) -> Subcommands:
    """A command with actions (`mlife model alias …`); every action runs `func`."""
    parser = sub.add_parser(name, help=help)
    parser.set_defaults(func=func)
    return parser.add_subparsers(dest="action", required=True)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="gateway URL (default: $MLIFE_URL, then `mlife login`'s)")
    common.add_argument("--token", help="API token (default: $MLIFE_TOKEN, then `mlife login`'s)")
    common.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    parser = argparse.ArgumentParser(prog="mlife", description="MLife command line")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run NATS, the four services and the gateway on this machine (embedded)")
    up.add_argument("--port", type=int, default=None, help="gateway port (default: $MLIFE_PORT or 8000)")
    up.add_argument("--label-studio", action="store_true",
                    help="run the pinned Label Studio beside it, DAM's labelling connector wired to it "
                         "(default: $MLIFE_LABEL_STUDIO=1); installed into $MLIFE_HOME/labelstudio/venv on first use")
    sub.add_parser("demo", help="the closed loop on scikit-learn's digits against a running platform "
                                "(`mlife demo --help`)")
    _account_commands(sub, common)
    _badcase_commands(sub, common)
    _data_commands(sub, common)
    _document_commands(sub, common)
    _dataset_commands(sub, common)
    _task_commands(sub, common)
    _model_commands(sub, common)
    _gate_commands(sub, common)
    _dead_letter_commands(sub, common)
    _subscriber_commands(sub, common)
    _deploy_commands(sub, common)
    _predict_commands(sub, common)
    _feedback_commands(sub, common)
    return parser


def _account_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("login", parents=[common], help="log in and keep an API token in ~/.config/mlife")
    p.add_argument("--username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_login)
    sub.add_parser("whoami", parents=[common], help="who the token belongs to").set_defaults(func=cmd_whoami)


def _badcase_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    bc = _group(sub, "badcase", "report, import, list and count badcases", cmd_badcase)
    p = bc.add_parser("add", parents=[common], help="report a badcase (merged when it is a duplicate)")
    p.add_argument("--function", required=True)
    for name in ("prediction", "ground-truth", "description", "model-name", "model-version", "system-version",
                 "task-id", "deployment-id", "model-version-id"):
        p.add_argument(f"--{name}")
    p.add_argument("--file", help="the data, stored by BAM (image, audio, video, text or JSON)")
    p.add_argument("--data", action="append", type=_data_ref, metavar="KIND:VALUE",
                   help="where the data is: md5:<DAM file MD5>, key:<object key> or url:<URL> (repeat)")
    p.add_argument("--data-md5", help="the same as --data md5:<hex>")
    p.add_argument("--features", metavar="JSON", help='a tabular badcase\'s row, e.g. \'{"alcohol": 13.2}\', or @file')
    p.add_argument("--severity", choices=["low", "medium", "high", "critical"])
    p.add_argument("--tag", action="append")
    p = bc.add_parser("import", parents=[common], help="bulk import a CSV or JSON-lines file (the fields of "
                      "`badcase add`); exits 1 listing the rows that failed")
    p.add_argument("path")
    p.add_argument("--format", choices=["csv", "jsonl"])
    p = bc.add_parser("add-to-test-data", parents=[common], help="append badcases (by id, or the ones the filters "
                      "select) to their function's badcase test set")
    p.add_argument("ids", nargs="*", metavar="ID")
    _add_filters(p)
    p = bc.add_parser("list", parents=[common], help="find badcases")
    _add_filters(p)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--sort")
    p.add_argument("--all", action="store_true", help="every page")
    p = bc.add_parser("preview", parents=[common], help="the preview of a badcase's data (a PNG or JSON), from BAM "
                      "or DAM as the badcase says; audio/video: of its segment")
    p.add_argument("id")
    p.add_argument("-o", "--output", help="write it to this file (needed for an image)")
    p.add_argument("--size", type=int, help="an image's longest side in pixels")
    p.add_argument("--view", choices=["waveform", "spectrogram", "poster", "strip"], help="audio or video: what to draw")
    p.add_argument("--start", type=float, help="seconds (default: the badcase's segment)")
    p.add_argument("--end", type=float, help="seconds (default: the badcase's segment)")
    p.add_argument("--at", type=float, help="video poster: the frame at this time (default: the segment's start)")
    p.add_argument("--frames", type=int, help="video strip: how many frames")
    p = bc.add_parser("stats", parents=[common], help="counts per attribute (or --weekly burn-down)")
    _add_filters(p)
    p.add_argument("--group-by", default="function", help="one attribute, or two separated by a comma")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--weekly", action="store_true")
    p.add_argument("--weeks", type=int, default=12)


def _data_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    data = sub.add_parser("data", help="upload data to DAM").add_subparsers(dest="action", required=True)
    p = data.add_parser("upload", parents=[common], help="upload a folder: MD5 precheck, parallel, progress bar")
    p.add_argument("dir")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--prefix", help="folder to record the files under")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_data)


def _document_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    doc = _group(sub, "document", "import / export DAM documents", cmd_document)
    p = doc.add_parser("import", parents=[common])
    p.add_argument("path")
    p.add_argument("--name", required=True)
    p.add_argument("--format", choices=["csv", "json", "xml"])
    p.add_argument("--description", default="")
    p.add_argument("--kind", choices=["standard", "table"], help="table: a plain table, one row per item, feature "
                   "columns + a label column, no files (default: a table when there is no md5/path column)")
    p.add_argument("--label-column", help="the label column of a table (default: label)")
    p = doc.add_parser("export", parents=[common])
    p.add_argument("id")
    p.add_argument("--format", default="csv")
    p.add_argument("--version", type=int)
    p.add_argument("--output", "-o")
    p = doc.add_parser("list", parents=[common])
    p.add_argument("--q")


def _dataset_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    ds = sub.add_parser("dataset", help="group items into datasets").add_subparsers(dest="action", required=True)
    p = ds.add_parser("group", parents=[common])
    p.add_argument("--name", required=True)
    p.add_argument("--document", action="append", required=True, help="document id (repeat)")
    p.add_argument("--split", help="e.g. train=0.8,test=0.2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--function", help="the function the data is for (its training tasks and models serve it)")
    p.set_defaults(func=cmd_dataset)


def _task_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    task = _group(sub, "task", "training and testing tasks", cmd_task)
    p = task.add_parser("create", parents=[common])
    p.add_argument("--kind", choices=["train", "test"], required=True)
    p.add_argument("--name", default="")
    p.add_argument("--dataset", action="append", required=True, help="dataset id (repeat)")
    p.add_argument("--model-name")
    p.add_argument("--command", help="run in the code folder, e.g. 'python train.py'")
    p.add_argument("--code", metavar="DIR", help="folder with the code (relative or absolute): zipped and uploaded")
    p.add_argument("--code-location", help="code MLife already has: store:<key>, or a folder on the server")
    p.add_argument("--function", help="the function the model serves, e.g. digits")
    p.add_argument("--run", action="store_true", help="queue it at once")
    p.add_argument("--param", action="append", default=[], metavar="KEY=JSON",
                   help='task parameter, e.g. preprocess=\'{"size": [8, 8], "mode": "L"}\' (repeat)')
    for name in ("run", "logs", "report"):
        p = task.add_parser(name, parents=[common])
        p.add_argument("id")
        if name == "logs":
            p.add_argument("--follow", "-f", action="store_true")
    p = task.add_parser("list", parents=[common])
    p.add_argument("--kind", choices=["train", "test"])
    p.add_argument("--status")
    p.add_argument("--function")


def _model_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    model = _group(sub, "model", "the model registry", cmd_model)
    model.add_parser("list", parents=[common])
    p = model.add_parser("alias", parents=[common], help="point an alias at a version")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version", help="version number, id, or another alias")
    p.add_argument("--reason")
    p = model.add_parser("set-function", parents=[common], help="declare the function a model serves (needed to "
                         "deploy it)")
    p.add_argument("name")
    p.add_argument("function")


def _gate_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    gate = sub.add_parser("gate", help="the deployment gate").add_subparsers(dest="action", required=True)
    p = gate.add_parser("preview", parents=[common], help="what the gate would say about a version now (exit 3 if "
                        "it would block)")
    p.add_argument("model", help="model name")
    p.add_argument("version", help="version number, id, or alias")
    p.add_argument("--metric", help="with --min/--max: a threshold to check")
    p.add_argument("--min", type=float)
    p.add_argument("--max", type=float)
    p.set_defaults(func=cmd_gate)


def _dead_letter_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    letters = _group(sub, "dead-letters", "events a service could not apply; re-drive them after a fix", cmd_dead_letters)
    for action in ("list", "redrive"):
        p = letters.add_parser(action, parents=[common], help="list them" if action == "list" else
                               "apply one (ID) or all pending of --consumer again, exactly once (maintainers)")
        p.add_argument("service", choices=["bam", "dam", "mtt", "msm", "gateway"])
        p.add_argument("--consumer", help="the durable consumer, e.g. bam-serving-feedback")
        if action == "list":
            p.add_argument("--state", choices=["pending", "redriven"])
            p.add_argument("--limit", type=int, default=100)
        else:
            p.add_argument("id", nargs="?", help="the dead letter's id")


def _subscriber_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    subs = _group(sub, "subscribers", "outside systems following the events on NATS with logins of their own "
                  "(maintainers)", cmd_subscribers)
    subs.add_parser("list", parents=[common], help="every subscriber and its durables' pending counts")
    p = subs.add_parser("create", parents=[common], help="durables for the subjects and a read-only NATS login "
                        "(the password is printed once)")
    p.add_argument("name")
    p.add_argument("--subject", action="append", required=True, help="a NATS pattern over the public subjects "
                   "(repeat), e.g. model.>")
    p.add_argument("--filter", action="append", metavar="FIELD=VALUE", help="payload filter the SDK applies (repeat)")
    p.add_argument("--new", action="store_true", help="only events published from now on (default: all kept)")
    p.add_argument("--description")
    for action, text in (("rotate", "a new password (printed once); the old one is refused"),
                         ("delete", "remove its durables and its login")):
        subs.add_parser(action, parents=[common], help=text).add_argument("name")
    p = subs.add_parser("replay", parents=[common], help="re-deliver from a time, or from a stream's sequence")
    p.add_argument("name")
    p.add_argument("--since", help="ISO time with a zone, e.g. 2026-12-06T05:00:00Z")
    p.add_argument("--stream")
    p.add_argument("--sequence", type=int)


def _deploy_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("deploy", parents=[common], help="request a deployment (the gate decides), or roll one back",
                       usage="mlife deploy NAME --version ID [--version ID ...] [options]\n"
                             "       mlife deploy rollback DEPLOYMENT --reason REASON [options]")
    p.add_argument("name", help="endpoint name; or `rollback`")
    p.add_argument("deployment", nargs="?", help="after `rollback`: the live deployment (id or name) to roll back")
    p.add_argument("--version", action="append", help="model version id (repeat for A/B)")
    p.add_argument("--function")
    p.add_argument("--target", help="deploy target: local, docker, edge or an installed plugin's (GET /api/msm/plugins)")
    p.add_argument("--override-reason", help="maintainers: deploy even if the gate blocks")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="when the request waits for its tests (awaiting_tests), wait up to SECONDS for the verdict")
    p.add_argument("--reason", help="why it is rolled back (recorded)")
    p.set_defaults(func=cmd_deploy)


def _predict_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("predict", parents=[common], help="call a deployment")
    p.add_argument("deployment")
    p.add_argument("--input", required=True, help='JSON inputs, e.g. {"x": [[1,0,0,0]]}, or @file.json')
    p.set_defaults(func=cmd_predict)


def _feedback_commands(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("feedback", parents=[common], help="flag a served prediction as wrong (BAM files a badcase)")
    p.add_argument("deployment", help="deployment name or id")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--inputs", metavar="JSON", help='the served input, e.g. {"x": [0, 1, 0, 0]}, or @file.json')
    given.add_argument("--input-file", metavar="FILE", help="the served input as .npy (one input), .npz or .json")
    given.add_argument("--input-ref", help="the served input's MD5 (a DAM file) or object key")
    p.add_argument("--input-name", help="the model input a .npy file is for (default: the model's only input)")
    p.add_argument("--correct-label", required=True, help="what the model should have answered")
    p.add_argument("--prediction", help="what it answered")
    p.add_argument("--prediction-id", help="from the predict answer (its input was logged: no input needed)")
    p.add_argument("--model-version-id", help="from the predict answer, when the deployment serves several")
    p.add_argument("--client-id")
    p.add_argument("--device-id")
    p.set_defaults(func=cmd_feedback)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:  # its own options: mlife/demo.py
        from mlife.demo import main as demo

        sys.exit(demo(argv[1:]))
    args = build_parser().parse_args(argv)
    if args.command == "up":
        from mlife.launcher import Launcher, LauncherConfig

        config = LauncherConfig.from_env(port=args.port, label_studio=args.label_studio)
        sys.exit(asyncio.run(Launcher(config).run()))
    sys.exit(run(args))


def run(args: argparse.Namespace) -> int:
    """The command, with its failures as messages and exit codes (the module docstring lists them)."""
    import httpx

    from mlife.client import MLifeAPIError

    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, so that a closed pipe is met below and not at exit
        return code
    except BrokenPipeError:
        return _output_closed()
    except KeyboardInterrupt:
        return 130
    except MLifeAPIError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"status": exc.status, "error": exc.error, "detail": exc.detail}))
        else:
            print(f"error: {exc}", file=sys.stderr)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        if exc.filename is None:
            raise
        print(f"error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
    except httpx.HTTPError as exc:
        print(f"error: cannot reach MLife: {exc}", file=sys.stderr)
    return 2


def _output_closed() -> int:
    """The reader went away (`| head`): stop quietly. What is still buffered goes to /dev/null, so that
    Python's own flush at exit does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass
    return 128 + 13  # as a tool stopped by SIGPIPE


if __name__ == "__main__":
    main()
