"""Where a request comes from, for the login limits and the X-Forwarded-For sent upstream.

The direct peer is the source, unless it is one of `trusted_proxies`: then X-Forwarded-For is read from
the right (the entries a trusted proxy appended) and the first address that is not itself a trusted proxy
is the source. A client-sent X-Forwarded-For is never believed from anyone else (uvicorn's own
`proxy_headers` is off: it trusts any header sent from 127.0.0.1). An IPv6 source counts as its /64: one
host commonly holds the whole /64, so per-address limits would not hold."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443" (RFC 7239 style)
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The client's address as text ('unknown' when the server cannot tell)."""
    peer_text = (scope.get("client") or ("",))[0] or ""
    peer = _ip(peer_text)
    if peer is None:
        return peer_text or "unknown"
    if not trusted or not any(peer in net for net in trusted):
        return str(peer)
    hops: list[str] = []
    for key, value in scope.get("headers", []):
        if key.lower() == b"x-forwarded-for":
            hops += value.decode("latin-1").split(",")
    source = peer
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break  # a garbled entry: what lies left of it cannot be told apart from client input
        source = address
        if not any(address in net for net in trusted):
            break
    return str(source)


def login_source(address: str) -> str:
    """The key the login limits count by: the address, an IPv6 one as its /64."""
    parsed = _ip(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed) if parsed is not None else address[:64]
