"""Who may do what on the bus: one NATS user per service, derived from the code, and the server config.

Nothing here is a hand-written list of subjects. A service's user may
- publish its own events: the subjects the registry gives its producer (stream `MLIFE_<SERVICE>`), and
  create, read and update that stream (no other stream: a consumer that starts first waits for it);
- use its own durable consumers only: `durable_name(service, subscription)` on the stream of each subject
  it subscribes to (info, create, fetch, ack) — never another service's consumer, never DELETE or PURGE;
- read the replies meant for it: its own inbox prefix `_INBOX_<user>` (bus.connect sets it).
MTT also owns its runners' work queue (mtt.runner.queue: a WorkQueue stream, subjects `<prefix>.<queue>`,
durables `mtt-runners-<queue>` for queues named at run time); `mtt-runner` is the user of a runner process
that does nothing else. `reader` is for third-party subscribers: it subscribes to the event subjects and
makes and reads consumers of its own on the event streams, and publishes nothing else.

Outside subscribers made through the gateway (`/api/gateway/subscribers`) are no static users: nats-server asks
the gateway (NATS auth callout, `$SYS.REQ.USER.AUTH`) about any login that is not one of the users above, and the
gateway answers with a user JWT signed by the callout issuer (an account nkey; its seed is the gateway's
`MLIFE_GATEWAY_AUTH_CALLOUT_SEED`) allowing `subscriber_permissions` only. The static users are the callout's
`auth_users`: they never go through it. The `gateway` user also manages those subscribers' durables (any name on
the event streams but the services' own consumers) and answers the callout.

`render_config()` writes the nats-server configuration: with literal passwords (`mlife up` writes it into
$MLIFE_HOME/nats) or with `$MLIFE_NATS_<USER>_PASSWORD` references that nats-server reads from its
environment (deploy/nats/nats.conf, committed; `python -m mlife_shared.messaging.natsauth` rewrites it).
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nkeys

from mlife_shared.events import registry
from mlife_shared.messaging.bus import inbox_prefix
from mlife_shared.messaging.consumer import Subscription, durable_name

if TYPE_CHECKING:
    from mlife_shared.app import ServiceSpec

SERVICES = ("bam", "dam", "mtt", "msm", "gateway")
READER = "reader"
MTT_RUNNER = "mtt-runner"
API = "$JS.API"
AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
CALLOUT_ISSUER_ENV = "MLIFE_NATS_AUTH_CALLOUT_ISSUER"
CALLOUT_SEED_FILE = "auth-callout.seed"
DEPLOY_CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "nats" / "nats.conf"


@dataclass(frozen=True)
class Consumer:
    """A durable consumer a user may use; `durable` "*" is any name (NATS matches whole tokens only)."""

    stream: str
    durable: str


@dataclass(frozen=True)
class WorkQueue:
    """MTT's run queue: a stream internal to MTT, subjects `<subject_prefix>.<queue>`, one durable per queue."""

    stream: str
    subject_prefix: str


@dataclass
class Permissions:
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    deny_publish: list[str] = field(default_factory=list)
    allow_responses: bool = False  # may answer requests it receives (nats-server `allow_responses`)

    def add(self, other: Permissions) -> Permissions:
        return Permissions(_unique(self.publish + other.publish), _unique(self.subscribe + other.subscribe),
                           _unique(self.deny_publish + other.deny_publish),
                           self.allow_responses or other.allow_responses)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def own_stream(producer: str) -> tuple[str, list[str]] | None:
    """The producer's stream and its exact subjects, from the event registry (None: it produces nothing)."""
    name = registry.stream_name(producer)
    subjects = registry.streams().get(name)
    return (name, subjects) if subjects else None


def event_streams(producers: Iterable[str] = SERVICES) -> dict[str, list[str]]:
    """The platform's event streams (a test registering events of its own adds none)."""
    return {s[0]: s[1] for p in producers if (s := own_stream(p)) is not None}


def stream_rights(stream: str, *, update: bool) -> list[str]:
    rights = [f"{API}.STREAM.INFO.{stream}", f"{API}.STREAM.CREATE.{stream}"]
    return rights + ([f"{API}.STREAM.UPDATE.{stream}"] if update else [])


def consumer_rights(c: Consumer) -> list[str]:
    """What nats-py sends for one durable pull consumer: info, create (the legacy durable form ConsumerRunner
    uses, and the named form with or without a filter subject that pull_subscribe uses), fetch, and acks
    (ack, nak, term and in-progress are publishes to the message's `$JS.ACK.<stream>.<consumer>.…` reply)."""
    s, d = c.stream, c.durable
    return [f"{API}.CONSUMER.INFO.{s}.{d}", f"{API}.CONSUMER.DURABLE.CREATE.{s}.{d}",
            f"{API}.CONSUMER.CREATE.{s}.{d}", f"{API}.CONSUMER.CREATE.{s}.{d}.>",
            f"{API}.CONSUMER.MSG.NEXT.{s}.{d}", f"$JS.ACK.{s}.{d}.>"]


def service_consumers(service: str, subscriptions: Sequence[Subscription]) -> list[Consumer]:
    return [Consumer(sub.stream_name, durable_name(service, sub)) for sub in subscriptions]


def work_queue_permissions(user: str, queue: WorkQueue) -> Permissions:
    """Runners (and dispatchers) of the run queue: queues are named per task at run time, so any durable
    of that stream, which belongs to MTT alone."""
    return Permissions(
        publish=[f"{API}.INFO", *stream_rights(queue.stream, update=True), f"{queue.subject_prefix}.>",
                 *consumer_rights(Consumer(queue.stream, "*"))],
        subscribe=[f"{inbox_prefix(user)}.>"])


def service_permissions(service: str, subscriptions: Sequence[Subscription],
                        queue: WorkQueue | None = None) -> Permissions:
    publish = [f"{API}.INFO"]
    stream = own_stream(service)
    if stream is not None:
        publish += stream_rights(stream[0], update=True) + stream[1]
    for consumer in service_consumers(service, subscriptions):
        publish += consumer_rights(consumer)
    perms = Permissions(publish=_unique(publish), subscribe=[f"{inbox_prefix(service)}.>"])
    if queue is not None:
        perms = perms.add(work_queue_permissions(service, queue))
    return perms


def reader_permissions(streams: Mapping[str, list[str]], service_owned: Iterable[Consumer]) -> Permissions:
    """Read-only: subscribe to the event subjects, and consumers of its own on the event streams. Consumer
    names are not prefixes NATS can match, so the reader may name any consumer except the services' own
    (denied by name: it can neither reconfigure nor drain them). No DELETE, no PURGE, no publish."""
    publish, subscribe = [f"{API}.INFO"], ["_INBOX.>", f"{inbox_prefix(READER)}.>"]
    for stream, subjects in streams.items():
        publish += [f"{API}.STREAM.INFO.{stream}", *consumer_rights(Consumer(stream, "*"))]
        subscribe += subjects
    deny = [right for c in service_owned for right in consumer_rights(c)]
    return Permissions(publish=publish, subscribe=subscribe, deny_publish=deny)


def subscriber_admin_permissions(streams: Iterable[str], others_owned: Iterable[Consumer]) -> Permissions:
    """The gateway's rights for outside subscribers: make, read and delete their durables on the event streams
    (any name but another service's consumer, denied by name as for the reader), and answer the auth callout."""
    publish = []
    for stream in streams:
        publish += [f"{API}.STREAM.INFO.{stream}", *consumer_rights(Consumer(stream, "*")),
                    f"{API}.CONSUMER.DELETE.{stream}.*"]
    deny = []
    for c in others_owned:
        deny += [*consumer_rights(c), f"{API}.CONSUMER.DELETE.{c.stream}.{c.durable}"]
    return Permissions(publish=publish, subscribe=[AUTH_CALLOUT_SUBJECT], deny_publish=deny, allow_responses=True)


def subscriber_user(name: str) -> str:
    """The NATS user of the outside subscriber `name` (never one of the static users, which have no `sub-`)."""
    return f"sub-{name}"


def subscriber_permissions(name: str, consumers: Iterable[Consumer]) -> Permissions:
    """An outside subscriber's rights, carried by the user JWT the callout signs: read its own durables (info,
    fetch, ack) and its own inbox; never publish an event, never create or delete a consumer or a stream."""
    publish = [f"{API}.INFO"]
    for c in consumers:
        publish += [f"{API}.CONSUMER.INFO.{c.stream}.{c.durable}", f"{API}.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}",
                    f"$JS.ACK.{c.stream}.{c.durable}.>"]
    return Permissions(publish=publish, subscribe=[f"{inbox_prefix(subscriber_user(name))}.>"])


def replay_permissions(streams: Iterable[str]) -> Permissions:
    """The gateway's webhook replay: read the event streams from a time or a sequence through an ephemeral
    consumer (`CONSUMER.CREATE.<stream>` makes unnamed ones only: no durable, no other service's consumer)
    that pushes to the gateway's own inbox."""
    return Permissions(publish=[right for s in streams for right in (f"{API}.STREAM.INFO.{s}",
                                                                     f"{API}.CONSUMER.CREATE.{s}")])


def load_specs(names: Sequence[str] = SERVICES) -> dict[str, ServiceSpec[Any]]:
    """The services' specs, found by name as `python -m <service>` finds them (shared imports no service)."""
    return {name: importlib.import_module(f"{name}.app").SPEC for name in names}


def spec_subscriptions(spec: ServiceSpec[Any]) -> list[Subscription]:
    """The subscriptions a service's worker runs (handlers are bound to a context they are never called with)."""
    from mlife_shared.app import ServiceContext

    ctx = ServiceContext(settings=spec.settings_cls.model_construct(), store=None, scoped=None)  # type: ignore[arg-type]  # never called: no store
    return list(spec.subscriptions(ctx))


def mtt_work_queue(spec: ServiceSpec[Any]) -> WorkQueue:
    settings: Any = spec.settings_cls.model_construct()
    return WorkQueue(stream=settings.runs_stream, subject_prefix=settings.runs_subject_prefix)


def platform_users(specs: Mapping[str, ServiceSpec[Any]] | None = None) -> dict[str, Permissions]:
    """Every NATS user of the platform and its permissions, in a stable order."""
    specs = specs if specs is not None else load_specs()
    subs = {name: spec_subscriptions(spec) for name, spec in specs.items()}
    queue = mtt_work_queue(specs["mtt"]) if "mtt" in specs else None
    users = {name: service_permissions(name, subs[name], queue if name == "mtt" else None) for name in specs}
    if queue is not None:
        users[MTT_RUNNER] = work_queue_permissions(MTT_RUNNER, queue)
    owned = [c for name in specs for c in service_consumers(name, subs[name])]
    users[READER] = reader_permissions(event_streams(specs), owned)
    if "gateway" in users:
        users["gateway"] = users["gateway"].add(replay_permissions(event_streams(specs)))
    if "gateway" in users:
        others = [c for name in specs if name != "gateway" for c in service_consumers(name, subs[name])]
        users["gateway"] = users["gateway"].add(subscriber_admin_permissions(event_streams(specs), others))
    return users


def password_env(user: str) -> str:
    """The variable deploy/nats/nats.conf reads a user's password from: MLIFE_NATS_BAM_PASSWORD, …"""
    return f"MLIFE_NATS_{user.upper().replace('-', '_')}_PASSWORD"


def _q(value: str) -> str:
    return json.dumps(value)  # a double-quoted string nats-server reads literally ($ included)


def _list(items: Sequence[str], indent: str) -> str:
    if not items:
        return "[]"
    return "[\n" + "".join(f"{indent}  {_q(i)}\n" for i in items) + f"{indent}]"


def _user_block(user: str, perms: Permissions, secret: str) -> list[str]:
    pad = "        "
    publish = f"{{ allow: {_list(perms.publish, pad)}"
    publish += f", deny: {_list(perms.deny_publish, pad)} }}" if perms.deny_publish else " }"
    if not perms.publish:
        publish = '{ deny: [">"] }'
    lines = ["    {", f"      user: {_q(user)}", f"      password: {secret}", "      permissions: {",
             f"        publish: {publish}", f"        subscribe: {{ allow: {_list(perms.subscribe, pad)} }}"]
    if perms.allow_responses:
        lines.append("        allow_responses: true")
    return [*lines, "      }", "    }"]


def render_config(users: Mapping[str, Permissions], *, passwords: Mapping[str, str] | None, listen: str,
                  store_dir: str, server_name: str, monitor: str | None = None,
                  callout_issuer: str | None = None) -> str:
    """The nats-server configuration: JetStream, and an authorization block with one user per entry of
    `users`. `passwords=None`: `$MLIFE_NATS_<USER>_PASSWORD` references, resolved by nats-server from its
    environment. No user without a password, no `no_auth_user`: an anonymous connection is refused.
    `callout_issuer` (an account public key, or `$VARIABLE`): any other login is asked of the auth callout
    (the gateway), whose answers that key signs; every user above is an `auth_users` entry and never asked."""
    head = "# Generated by mlife_shared.messaging.natsauth from the event registry and the services' subscriptions.\n"
    if passwords is None:
        head += "# Do not edit: `python -m mlife_shared.messaging.natsauth` rewrites it (a test fails when it is stale).\n"
    lines = [head.rstrip("\n"), f"server_name: {_q(server_name)}", f"listen: {_q(listen)}"]
    if monitor:
        lines.append(f"http: {_q(monitor)}")
    lines += ["jetstream {", f"  store_dir: {_q(store_dir)}", "}", "authorization {", "  users = ["]
    for user, perms in users.items():
        lines += _user_block(user, perms, f"${password_env(user)}" if passwords is None else _q(passwords[user]))
    lines.append("  ]")
    if callout_issuer is not None:
        issuer = callout_issuer if callout_issuer.startswith("$") else _q(callout_issuer)
        lines += ["  auth_callout {", f"    issuer: {issuer}", f"    auth_users: {_list(list(users), '    ')}", "  }"]
    lines += ["}", ""]
    return "\n".join(lines)


def render_deploy_config(users: Mapping[str, Permissions] | None = None) -> str:
    """deploy/nats/nats.conf: the compose `nats` service, passwords from its environment (.env)."""
    return render_config(users or platform_users(), passwords=None, listen="0.0.0.0:4222", store_dir="/data",
                         server_name="mlife-nats", monitor="127.0.0.1:8222", callout_issuer=f"${CALLOUT_ISSUER_ENV}")


def relocate(config: str, *, listen: str, store_dir: str, monitor: str) -> str:
    """The deploy config with another address, store and monitoring port, its authorization untouched: to run
    the committed file beside other servers on one machine (the tests do)."""
    for old, new in ((f"listen: {_q('0.0.0.0:4222')}", f"listen: {_q(listen)}"),
                     (f"store_dir: {_q('/data')}", f"store_dir: {_q(store_dir)}"),
                     (f"http: {_q('127.0.0.1:8222')}", f"http: {_q(monitor)}")):
        if config.count(old) != 1:
            raise ValueError(f"not the deploy config: {old!r} is not there once")
        config = config.replace(old, new)
    return config


def ensure_passwords(folder: Path, users: Iterable[str]) -> dict[str, str]:
    """A random password per user in `folder/<user>.password` (folder 0700, files 0600), kept across starts."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    out = {}
    for user in users:
        path = folder / f"{user}.password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        path.chmod(0o600)
        out[user] = path.read_text().strip()
    return out


def new_callout_seed() -> str:
    """A new auth callout issuer: an account nkey seed (`SA…`)."""
    return str(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_ACCOUNT).decode())


def callout_issuer(seed: str) -> str:
    """The public key (`A…`) of an auth callout issuer seed: what nats-server's `auth_callout.issuer` names."""
    return str(nkeys.from_seed(seed.encode()).public_key.decode())


def ensure_callout_seed(folder: Path) -> str:
    """`mlife up`: the callout issuer's seed in `folder/auth-callout.seed` (0600), kept across starts."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CALLOUT_SEED_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_callout_seed())
    path.chmod(0o600)
    return path.read_text().strip()


def write_embedded_config(folder: Path, *, port: int, server_name: str = "mlife-embedded",
                          users: Mapping[str, Permissions] | None = None) -> tuple[Path, dict[str, str]]:
    """`mlife up`: passwords and nats.conf (0600) in `folder`, which is also the JetStream store (as before
    authentication, so an existing home keeps its streams), with the auth callout's issuer seed
    (`ensure_callout_seed`, handed to the gateway). Returns the config path and the passwords."""
    users = users or platform_users()
    passwords = ensure_passwords(folder, users)
    text = render_config(users, passwords=passwords, listen=f"127.0.0.1:{port}", store_dir=str(folder),
                         server_name=server_name, callout_issuer=callout_issuer(ensure_callout_seed(folder)))
    path = folder / "nats.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)
    return path, passwords


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mlife_shared.messaging.natsauth [--check]`: rewrite (or check) deploy/nats/nats.conf;
    `--callout-key`: print a new auth callout issuer (the two .env lines)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--callout-key" in args:  # for .env: the server's issuer (public) and the gateway's seed (secret)
        seed = new_callout_seed()
        print(f"{CALLOUT_ISSUER_ENV}={callout_issuer(seed)}\nMLIFE_GATEWAY_AUTH_CALLOUT_SEED={seed}")
        return 0
    text = render_deploy_config()
    if "--check" in args:
        current = DEPLOY_CONFIG.read_text() if DEPLOY_CONFIG.exists() else ""
        if current != text:
            print(f"{DEPLOY_CONFIG} is stale: run python -m mlife_shared.messaging.natsauth", file=sys.stderr)
            return 1
        return 0
    DEPLOY_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    DEPLOY_CONFIG.write_text(text)
    print(f"wrote {DEPLOY_CONFIG}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
