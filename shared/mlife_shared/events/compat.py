"""Is a change to a contract breaking? Compares two JSON schemas of one version of a contract (pydantic's,
`$defs` and `$ref` included) the way a subscriber written against the old one would feel it.

Additive, within a version: a new optional field, a new enum value, a type that accepts more (a new member of
an `anyOf`). Breaking, which needs a new `schema_version` (and the old one kept through its deprecation
period, `registry.register_previous`): a field removed, a field made required or added as required, a type
changed or narrowed, an enum value removed."""

from __future__ import annotations

import json
from typing import Any

Schema = dict[str, Any]
_NOISE = ("title", "description", "default", "examples")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What a subscriber of `old` would no longer be able to count on in `new` (empty: compatible)."""
    out: list[str] = []
    _diff(_Resolver(old), old, _Resolver(new), new, "data", out)
    return out


class _Resolver:
    def __init__(self, root: Schema) -> None:
        self.defs: dict[str, Schema] = root.get("$defs", {})

    def resolve(self, node: Schema) -> Schema:
        seen = 0
        while "$ref" in node and seen < 20:
            node = {**self.defs.get(node["$ref"].rsplit("/", 1)[-1], {}),
                    **{k: v for k, v in node.items() if k != "$ref"}}
            seen += 1
        return node


def _diff(ro: _Resolver, old: Schema, rn: _Resolver, new: Schema, path: str, out: list[str], depth: int = 0) -> None:
    old, new = ro.resolve(old), rn.resolve(new)
    if depth > 30:
        return
    if "properties" in old or old.get("type") == "object":
        _diff_object(ro, old, rn, new, path, out, depth)
    elif "anyOf" in old or "anyOf" in new:
        _diff_union(ro, old, rn, new, path, out)
    elif "enum" in old:
        if "const" in new:
            new = {**new, "enum": [new["const"]]}
        if "enum" in new:
            removed = [v for v in old["enum"] if v not in new["enum"]]
            if removed:
                out.append(f"{path}: enum value(s) {removed} removed")
        elif new.get("type") != old.get("type", _type_of(old["enum"])):
            out.append(f"{path}: type {_label(old)} became {_label(new)}")
    elif "items" in old:
        if "items" not in new:
            out.append(f"{path}: no longer a list")
        else:
            _diff(ro, old["items"], rn, new["items"], f"{path}[]", out, depth + 1)
    elif (old.get("type"), old.get("format"), old.get("const")) != (new.get("type"), new.get("format"), new.get("const")):
        out.append(f"{path}: type {_label(old)} became {_label(new)}")


def _diff_object(ro: _Resolver, old: Schema, rn: _Resolver, new: Schema, path: str, out: list[str],
                 depth: int) -> None:
    if "properties" not in new and new.get("type") != "object":
        out.append(f"{path}: no longer an object")
        return
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, schema in old_props.items():
        if name not in new_props:
            out.append(f"{path}.{name}: removed")
        else:
            _diff(ro, schema, rn, new_props[name], f"{path}.{name}", out, depth + 1)
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        out.append(f"{path}.{name}: {'now required' if name in old_props else 'added as required'}")


def _diff_union(ro: _Resolver, old: Schema, rn: _Resolver, new: Schema, path: str, out: list[str]) -> None:
    """Every member the old schema accepted must still be accepted."""
    olds = [_shape(ro, m) for m in old.get("anyOf", [old])]
    news = [_shape(rn, m) for m in new.get("anyOf", [new])]
    keys = {json.dumps(n, sort_keys=True) for n in news}
    for member in olds:
        if json.dumps(member, sort_keys=True) not in keys:
            out.append(f"{path}: no longer accepts {_label(member)}")


def _shape(r: _Resolver, node: Schema) -> Schema:
    node = r.resolve(node)
    shape = {k: v for k, v in node.items() if k not in _NOISE}
    if "properties" in shape:
        shape["properties"] = {k: _shape(r, v) for k, v in shape["properties"].items()}
    if isinstance(shape.get("items"), dict):
        shape["items"] = _shape(r, shape["items"])
    return shape


def _type_of(values: list[Any]) -> str:
    return "string" if all(isinstance(v, str) for v in values) else "mixed"


def _label(node: Schema) -> str:
    if "enum" in node:
        return f"enum {node['enum']}"
    return "/".join(str(node[k]) for k in ("type", "format", "const") if k in node) or "object"
