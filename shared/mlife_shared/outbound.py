"""The one way a service calls a URL that a user supplied (webhooks, pre-label endpoints, data URIs).

A user-supplied URL must not reach MLife's own network: `check_url` refuses a URL that is not plain
http(s), carries userinfo, or whose host resolves to ANY loopback, private (RFC 1918, CGNAT), link-local
(cloud metadata included), unique-local, multicast, unspecified or reserved address — also when written
as an IPv4-mapped / -compatible / 6to4 / NAT64 IPv6 address, or as a decimal/octal/hex IPv4 — unless an
operator allow-listed it. `fetch` checks again at call time, on every redirect hop (followed here, not by
httpx, a bounded number of times), and connects to the very address it checked (the URL's host is
replaced by that IP; the Host header and TLS SNI/certificate check keep the name), so DNS cannot change
between the check and the connection. It sends only the headers the caller gives it — never an MLife
identity, cookie or Authorization unless the caller passes that endpoint's own configured secret — and
reads at most `max_bytes` of the answer. Its errors name the host and the status, never the answer body.

Allow-list entries (an operator setting of each service): a host name (`models.internal`), an IP or a CIDR
(`10.0.0.0/8`), each optionally with a port (`127.0.0.1:8080`, `[::1]:8080`, `models.internal:443`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from mlife_shared.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Headers that carry a platform credential: never sent to a user-supplied URL (Authorization only when the
# caller passes it in `secret_headers`, the secret the user configured for that very endpoint).
FORBIDDEN_HEADERS = frozenset({"x-mlife-identity", "cookie", "authorization", "proxy-authorization",
                               "x-mlife-webhook-secret", "host"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPAT = ipaddress.ip_network("::/96")
_EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "64:ff9b:1::/48")]


class UnsafeUrl(Unprocessable):
    """The URL may not be called: not http(s), or its host is internal and not allow-listed."""


class OutboundError(Unprocessable):
    """The URL could not be called, or answered with an error (its body is never echoed)."""

    def __init__(self, message: str, *, host: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.upstream_status = upstream_status  # what the remote answered; `status_code` stays our 422


def _embedded_ipv4(ip: IPAddress) -> list[IPAddress]:
    """The IPv4 addresses an IPv6 address also stands for (mapped, compatible, 6to4, Teredo, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    out: list[IPAddress] = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if ip in _NAT64 or (ip in _COMPAT and int(ip) > 1):
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def is_blocked(ip: IPAddress) -> bool:
    """True for every address that is not a public unicast one (or stands for one that is not)."""
    if any(is_blocked(v4) for v4 in _embedded_ipv4(ip)):
        return True
    if any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version):
        return True
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or site_local or not ip.is_global)


@dataclass(frozen=True)
class _Allow:
    host: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None


def _parse_allow(entry: str) -> _Allow | None:
    entry = entry.strip().lower()
    if not entry:
        return None
    port: int | None = None
    if entry.startswith("["):
        inner, _, rest = entry[1:].partition("]")
        entry = inner
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif entry.count(":") == 1:
        entry, _, p = entry.partition(":")
        if not p.isdigit():
            return None
        port = int(p)
    try:
        return _Allow(network=ipaddress.ip_network(entry, strict=False), port=port)
    except ValueError:
        return _Allow(host=entry.rstrip("."), port=port)


def is_allowed(host: str, port: int, ips: Sequence[IPAddress], allow: Sequence[str]) -> bool:
    """Whether an operator allow-listed this host (by name) or all of its addresses (by IP/CIDR), on this port."""
    for raw in allow:
        rule = _parse_allow(raw)
        if rule is None or (rule.port is not None and rule.port != port):
            continue
        if rule.host is not None and rule.host == host.lower().rstrip("."):
            return True
        if rule.network is not None and ips and all(ip.version == rule.network.version and ip in rule.network
                                                    for ip in ips):
            return True
    return False


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`ip`) and what to say (`host`, `port`, the URL)."""

    url: str
    scheme: str
    host: str
    port: int
    ips: list[IPAddress] = field(default_factory=list)

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (what httpx connects to)."""
        parts = urlsplit(self.url)
        ip = self.ips[0]
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        return urlunsplit((parts.scheme, f"{literal}:{self.port}", parts.path or "/", parts.query, ""))

    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


async def _resolve(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ips: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in ips:
            ips.append(ip)
    return ips


async def check_url(url: str, allow: Sequence[str], *, what: str = "the URL", setting: str = "") -> Target:
    """The checked target of an acceptable user-supplied URL, or UnsafeUrl saying why not (`what` names the
    field, e.g. "prelabel.endpoint"; `setting` names the operator's allow-list setting)."""
    if not isinstance(url, str) or len(url) > 2048:
        raise UnsafeUrl(f"{what} must be an http(s) URL of at most 2048 characters")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"{what} is malformed: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl(f"{what} must be an http or https URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl(f"{what} must not carry credentials (user:password@)")
    if not host:
        raise UnsafeUrl(f"{what} has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        ips = await _resolve(host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        raise UnsafeUrl(f"{what}: the host {host!r} does not resolve") from exc
    if not ips:
        raise UnsafeUrl(f"{what}: the host {host!r} does not resolve")
    target = Target(url=url.strip(), scheme=parts.scheme, host=host, port=port, ips=ips)
    if is_allowed(host, port, ips, allow):
        return target
    bad = [str(ip) for ip in ips if is_blocked(ip)]
    if bad:
        hint = f" ({setting})" if setting else ""
        raise UnsafeUrl(f"{what}: the host {host!r} resolves to a non-public address ({', '.join(bad)}); an "
                        f"operator may allow-list it{hint}")
    return target


@dataclass
class OutboundResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes
    host: str

    def json(self) -> Any:
        import json

        return json.loads(self.content)


def _safe_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (headers or {}).items() if k.lower() not in FORBIDDEN_HEADERS}


async def fetch(method: str, url: str, *, allow: Sequence[str], what: str = "the URL", setting: str = "",
                headers: Mapping[str, str] | None = None, secret_headers: Mapping[str, str] | None = None,
                content: bytes | None = None, timeout: float = 30.0, max_bytes: int = 16 * 1024 * 1024,
                max_redirects: int = 5, verify: bool = True) -> OutboundResponse:
    """Call a user-supplied URL safely (see the module docstring). `secret_headers` (e.g. the Authorization
    the user configured for this endpoint) go to the first origin only, never across a redirect to another.
    Raises UnsafeUrl when a hop is refused, OutboundError when unreachable, too large or too many redirects."""
    sent_headers = _safe_headers(headers)
    secrets = dict(secret_headers or {})
    origin: tuple[str, str, int] | None = None
    limits = httpx.Timeout(timeout)
    sent_headers.setdefault("accept-encoding", "identity")
    async with httpx.AsyncClient(timeout=limits, follow_redirects=False, trust_env=False, verify=verify) as client:
        for hop in range(max_redirects + 1):
            target = await check_url(url, allow, what=what, setting=setting)
            here = (target.scheme, target.host.lower(), target.port)
            origin = origin or here
            request_headers = {**sent_headers, "host": target.host_header()}
            if here == origin:
                request_headers.update(secrets)
            client.cookies.clear()
            request = client.build_request(method, target.pinned_url(), headers=request_headers, content=content,
                                           extensions={"sni_hostname": target.host} if target.scheme == "https" else {})
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise OutboundError(f"{what}: {target.host} is unreachable ({type(exc).__name__})",
                                    host=target.host) from exc
            try:
                if response.is_redirect and "location" in response.headers:
                    if hop == max_redirects:
                        raise OutboundError(f"{what}: {target.host} redirected more than {max_redirects} times",
                                            host=target.host, upstream_status=response.status_code)
                    url = urljoin(target.url, response.headers["location"])
                    if response.status_code == 303 or (response.status_code in (301, 302) and method != "GET"):
                        method, content = "GET", None
                        sent_headers = {k: v for k, v in sent_headers.items() if k.lower() != "content-type"}
                    continue
                body = await _read_body(response, max_bytes, what, target.host)
                return OutboundResponse(response.status_code, response.headers, body, target.host)
            finally:
                await response.aclose()
    raise AssertionError("unreachable")  # pragma: no cover


async def _read_body(response: httpx.Response, max_bytes: int, what: str, host: str) -> bytes:
    """The answer's body, at most `max_bytes` read off the wire and at most `max_bytes` once decompressed."""
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise OutboundError(f"{what}: the answer of {host} is larger than {max_bytes} bytes", host=host,
                                    upstream_status=response.status_code)
    except httpx.HTTPError as exc:
        raise OutboundError(f"{what}: {host} failed while answering ({type(exc).__name__})", host=host,
                            upstream_status=response.status_code) from exc
    if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
        return _decode(bytes(body), response.headers["content-encoding"], max_bytes, what, host)
    return bytes(body)


def _decode(body: bytes, encoding: str, max_bytes: int, what: str, host: str) -> bytes:
    """A compressed answer, decompressed no further than `max_bytes` (no decompression bombs)."""
    import zlib

    if encoding.lower() not in ("gzip", "deflate", "x-gzip"):
        raise OutboundError(f"{what}: {host} answered with an unsupported content-encoding", host=host)
    d = zlib.decompressobj(zlib.MAX_WBITS | 32)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise OutboundError(f"{what}: {host} answered with a damaged compressed body", host=host) from exc
    if len(out) > max_bytes or d.unconsumed_tail:
        raise OutboundError(f"{what}: the answer of {host} expands beyond {max_bytes} bytes", host=host)
    return out


def describe(exc: Exception) -> str:
    """A short, safe description of a failed outbound call (host and status, never the body)."""
    if isinstance(exc, (UnsafeUrl, OutboundError)):
        return str(exc.message)
    return type(exc).__name__
