"""The public event API as an AsyncAPI 3.0 document, generated from the contract registry: every subject,
its stream, the envelope with its payload schema, an example of each event, the headers, and what a
subscriber can count on (delivery, ordering, de-duplication, retention). Nothing here is written by hand
per event: a new contract appears in the document when it is registered.

    python -m mlife_shared.events.asyncapi [--server nats://host:4222] > asyncapi.json
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from mlife_shared.events.envelope import EventData, envelope_of
from mlife_shared.events.registry import EVENTS, PREVIOUS, stream_for_subject

API_VERSION = "1.0.0"
DUPLICATE_WINDOW_MINUTES = 15
RETENTION_DAYS = 30
EXAMPLE_TIME = "2026-01-01T12:00:00Z"
# Values that read like a real run of the digits example, by field name (any other field gets a value of
# its type); every example is validated by its contract, so a value that stops fitting is caught.
NAMED_EXAMPLES: dict[str, Any] = {
    "function": "digits", "model_name": "digits-logreg", "model_version": "3", "name": "digits",
    "priority": 0.82, "severity": "high", "reason": "accuracy dropped below the gate's threshold",
    "ground_truth": "7", "prediction": "1", "document_version": 2, "version": 2, "frequency": 3,
}

GUARANTEES = f"""\
**Delivery.** Every event is written to its producer's outbox in the same transaction as the change it
announces, and published by a relay after the commit: an event is never lost and never announces a
change that was rolled back. Delivery is *at least once*: a subscriber may see an event twice (after a
relay or a subscriber restart) and must be idempotent on the envelope `id`, which is also the
`Nats-Msg-Id` header. JetStream drops a repeated `Nats-Msg-Id` within {DUPLICATE_WINDOW_MINUTES} minutes.

**Streams.** Each producing service owns one JetStream stream (`MLIFE_<SERVICE>`) holding exactly its
subjects; a subject lives in one stream only (`x-mlife-stream` on each channel). A pattern such as
`model.>` can span several streams (`model.uploaded` is MTT's, the other model events MSM's): bind one
durable consumer per stream and subject. Streams keep events for {RETENTION_DAYS} days (`MLIFE_STREAM_MAX_AGE_DAYS`): a
consumer can start from any time or sequence within that window and replay.

**Ordering.** Events of one stream are delivered in the order they were published, which is commit
order per producer; there is no order across streams. Use `correlation_id` (one flow) and
`causation_id` (the event that caused this one) to relate events.

**Authentication.** The bus refuses anonymous connections. A third party uses the read-only user
`reader`: it may read every stream and create consumers of its own, never publish an event, delete or
purge, nor touch the services' consumers. Or a login of its own, made by a maintainer through the gateway
(`/api/gateway/subscribers`): it reads only the durables made for it (docs/subscribing.md).

**Versions.** `version` in the envelope is the payload's schema version (`x-mlife-schema-version`).
Within a version fields are only ever added, optional (ignore fields you do not know); removing, retyping or
requiring one makes a new version — a test refuses any other change. The bus carries the latest version; an
earlier one is kept for at least 180 days after it is superseded (`x-mlife-deprecated` gives the dates):
webhooks and `mlife.events.subscribe(versions=...)` pinned to it receive each event downgraded to it until
its sunset."""


def _example_value(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> Any:
    """A value that validates against `schema` (pydantic's JSON schema of a contract): the first of an
    enum, a fixed id for a uuid, the minimum of a bounded number, every required property."""
    if "$ref" in schema:
        return _example_value(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name)
    if "examples" in schema:
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if name in NAMED_EXAMPLES and _fits(NAMED_EXAMPLES[name], schema):
        return NAMED_EXAMPLES[name]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _example_value(options[0], defs, name)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example_value(v, defs, k) for k, v in props.items()}  # optional ones too: show them filled
    if kind == "array":
        item = _example_value(schema.get("items", {}), defs, name)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    if kind == "string":
        return _example_string(schema, name)
    return None


_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float)}


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    """Whether a named example has the schema's (scalar) type; enums and formats are left to their own rule."""
    if "enum" in schema or "const" in schema or "format" in schema or "pattern" in schema:
        return False
    return isinstance(value, _JSON_TYPES.get(schema.get("type", ""), ())) and not isinstance(value, bool)


def _example_string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if fmt == "uuid":
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlife:{name}"))
    if fmt == "date-time":
        return EXAMPLE_TIME
    if "pattern" in schema and "md5" in name:
        return "9e107d9d372bb6826bd81d3542a419d6"
    text = name.replace("_", "-") or "text"
    return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), "x")


def example_of(model: type[EventData]) -> dict[str, Any]:
    """An example envelope of `model` (its payload validated by the model itself)."""
    schema = model.model_json_schema()
    data = model.model_validate(_example_value(schema, schema.get("$defs", {}))).model_dump(mode="json")
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlife:event:{model.subject}"))
    return {"id": event_id, "type": model.subject, "version": model.schema_version, "source": model.producer,
            "time": EXAMPLE_TIME, "correlation_id": event_id, "causation_id": None, "data": data}


def _message_name(model: type[EventData]) -> str:
    return model.__name__


def _channel_id(subject: str) -> str:
    return subject.replace(".", "_")


def _envelope_schema(model: type[EventData], schemas: dict[str, Any]) -> dict[str, Any]:
    """The envelope with this event's payload; the models it uses go into `schemas` (components)."""
    schema = envelope_of(model).model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are named {name}: rename one of the models")
    schema["title"] = f"{model.__name__} envelope"
    return schema


def _message(model: type[EventData]) -> dict[str, Any]:
    summary = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else model.subject
    return {
        "name": _message_name(model),
        "title": model.subject,
        "summary": summary,
        "description": (model.__doc__ or "").strip(),
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/NatsHeaders"},
        "payload": {"$ref": f"#/components/schemas/{_message_name(model)}Envelope"},
        "examples": [{"name": f"{model.subject} example", "headers": {"Nats-Msg-Id": example_of(model)["id"]},
                      "payload": example_of(model)}],
        "x-mlife-schema-version": model.schema_version,
    }


def _channel_and_operation(model: type[EventData], name: str, channel: str) -> tuple[dict[str, Any], dict[str, Any]]:
    subject, stream = model.subject, stream_for_subject(model.subject)
    return ({"address": subject, "title": subject, "description": (model.__doc__ or "").strip(),
             "messages": {name: {"$ref": f"#/components/messages/{name}"}},
             "x-mlife-stream": stream, "x-mlife-producer": model.producer},
            {"action": "receive", "title": f"Receive {subject}",
             "summary": f"Published by {model.producer.upper()} on stream {stream}",
             "channel": {"$ref": f"#/channels/{channel}"},
             "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}]})


def public_events() -> dict[str, type[EventData]]:
    """The platform's contracts (mlife_shared.events.contracts): not those a test or a bench registers."""
    return {s: m for s, m in sorted(EVENTS.items()) if m.__module__.startswith("mlife_shared.")}


def document(server: str = "nats://127.0.0.1:4222", events: dict[str, type[EventData]] | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every public event (or of `events`), with the earlier versions still served."""
    host = server.split("://", 1)[-1]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"NatsHeaders": {
        "type": "object", "properties": {"Nats-Msg-Id": {
            "type": "string", "format": "uuid",
            "description": "The envelope id: JetStream's de-duplication key and the subscriber's idempotency key"}}}}
    for subject, model in (public_events() if events is None else events).items():
        name, channel = _message_name(model), _channel_id(subject)
        messages[name] = _message(model)
        schemas[f"{name}Envelope"] = _envelope_schema(model, schemas)
        channels[channel], operations[f"receive_{channel}"] = _channel_and_operation(model, name, channel)
        for (previous_subject, version), previous in sorted(PREVIOUS.items(), reverse=True):
            if previous_subject == subject:
                old = f"{name}_v{version}"
                messages[old] = _message(previous.model) | {
                    "name": old, "payload": {"$ref": f"#/components/schemas/{old}Envelope"},
                    "x-mlife-deprecated": {"since": previous.deprecated_on.isoformat(),
                                           "sunset": previous.sunset.isoformat()}}
                schemas[f"{old}Envelope"] = _envelope_schema(previous.model, schemas)
                channels[channel]["messages"][old] = {"$ref": f"#/components/messages/{old}"}
                operations[f"receive_{channel}"]["messages"].append({"$ref": f"#/channels/{channel}/messages/{old}"})
    return {
        "asyncapi": "3.0.0",
        "id": "urn:mlife:events",
        "info": {"title": "MLife events", "version": API_VERSION,
                 "description": "What MLife's services announce on NATS JetStream, for subscribers outside the "
                                "platform (labelling systems, dashboards, alerting).\n\n" + GUARANTEES,
                 "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"}},
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": host, "protocol": "nats", "description": "The platform's NATS JetStream",
                             "security": [{"$ref": "#/components/securitySchemes/natsUser"}]}},
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {"natsUser": {"type": "userPassword",
                                             "description": "A NATS user and password (read-only for subscribers)"}},
        },
    }


SUBSCRIBING = """\
## Subscribing

Connect with the read-only login: `mlife up` writes the `reader` password to
`$MLIFE_HOME/nats/reader.password` (compose: `MLIFE_NATS_READER_PASSWORD` in `.env`). Bind a durable pull
consumer of your own to the stream that holds the subject (table below): it remembers where you stopped
across restarts. Acknowledge each message once you have applied it, keyed on the envelope `id`, so that a
redelivery is harmless. A pull request outlives its connection by its timeout: an event published in those
seconds after a stop goes to it and comes back once its ack wait (30 s) is over, so keep the fetch timeout
short:

```python
import json

import nats
import nats.errors

async def follow(password: str) -> None:
    nc = await nats.connect("nats://127.0.0.1:4222", user="reader", password=password)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("badcase.test_data_requested", durable="acme-test-data", stream="MLIFE_BAM")
        while True:
            try:
                batch = await sub.fetch(10, timeout=5)
            except nats.errors.TimeoutError:
                continue  # nothing new in 5 s
            for msg in batch:
                event = json.loads(msg.data)          # the envelope: id, type, version, source, time, data
                handle(event["type"], event["data"])  # your code; idempotent on event["id"]
                await msg.ack()
    finally:
        await nc.close()  # a pull still waiting at the server ends with the connection
```

With the `mlife` package installed, `mlife.events.subscribe` does this for every stream a pattern spans
(`model.>` is in two) and types each payload by its contract:

```
from mlife.events import subscribe

async for event in subscribe("model.>", durable="acme-dashboard", password_file=PASSWORD_FILE):
    print(event.type, event.payload)   # the contract's pydantic model
    await event.ack()
```

A worked example is a labelling system that annotates every labelling task through the API and survives
restarts without losing an event: [examples/labelling_system](../examples/labelling_system/README.md); writing
such a subscriber step by step (logins, acks, acting through the API): [subscribing.md](subscribing.md).

The machine-readable form of this page is the AsyncAPI 3.0 document, served by the gateway at
`/api/gateway/events/asyncapi.json` and printed by `python -m mlife_shared.events.asyncapi`.
"""


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type_of(s) for s in schema[key])
    if schema.get("type") == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    return str(schema.get("format") or schema.get("type") or "any")


def _fields(schema: dict[str, Any], *, envelope: bool = False) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        if envelope and name == "data":
            rows.append("| `data` | object | yes | The event's payload: its fields are listed with each event below |")
            continue
        description = " ".join(str(prop.get("description", "")).split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_of(prop)} | {'yes' if name in required else ''} | {description} |")
    return rows


def markdown(doc: dict[str, Any]) -> str:
    """docs/events.md: the same document for people (kept in step by a test)."""
    schemas = doc["components"]["schemas"]
    lines = ["# MLife events", "", "<!-- generated by `python -m mlife_shared.events.asyncapi --markdown`; "
             "do not edit -->", "", f"Event API version {doc['info']['version']}. " + doc["info"]["description"],
             "", SUBSCRIBING, "## Streams", "", "| stream | producer | subjects |", "|---|---|---|"]
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for channel in doc["channels"].values():
        by_stream.setdefault(channel["x-mlife-stream"], []).append(channel)
    for stream, channels in sorted(by_stream.items()):
        subjects = ", ".join(f"`{c['address']}`" for c in channels)
        lines.append(f"| `{stream}` | {channels[0]['x-mlife-producer'].upper()} | {subjects} |")
    envelope = next(v for k, v in schemas.items() if k.endswith("Envelope"))
    lines += ["", "## The envelope", "", *_fields(envelope, envelope=True), "",
              "Header `Nats-Msg-Id` is the envelope `id`.", "", "## Events", ""]
    for channel in doc["channels"].values():
        latest, *earlier = (doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
                            for ref in channel["messages"].values())
        payload = schemas[latest["name"]]
        kept = "".join(f" Version {m['x-mlife-schema-version']} is still served until "
                       f"{m['x-mlife-deprecated']['sunset']} (deprecated on {m['x-mlife-deprecated']['since']})."
                       for m in earlier)
        lines += [f"### `{channel['address']}`", "", channel["description"], "",
                  f"Stream `{channel['x-mlife-stream']}`, schema version {latest['x-mlife-schema-version']}.{kept}", "",
                  *_fields(payload), "", "```json", json.dumps(latest["examples"][0]["payload"], indent=2), "```", ""]
    for name, schema in sorted(schemas.items()):
        if name.endswith("Envelope") or name == "NatsHeaders" or name in doc["components"]["messages"]:
            continue
        lines += [f"### Part: `{name}`", "", " ".join(str(schema.get("description", "")).split()), "",
                  *_fields(schema), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print MLife's AsyncAPI document")
    parser.add_argument("--server", default="nats://127.0.0.1:4222", help="the NATS URL subscribers connect to")
    parser.add_argument("--markdown", action="store_true", help="docs/events.md instead of the JSON document")
    args = parser.parse_args(argv)
    doc = document(args.server)
    sys.stdout.write(markdown(doc) if args.markdown else json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
