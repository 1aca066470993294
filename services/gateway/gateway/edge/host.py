"""The Host header, parsed as an RFC 3986 authority without userinfo (RFC 9110 §7.2: `uri-host [":" port]`).

Anything a browser or an HTTP client would not send is refused rather than guessed at: userinfo
(`localhost:8000@evil.example`), whitespace, several hosts (`a, b`), a path, query or fragment, percent
encoding, an empty or non-numeric port or one above 65535, an IPv6 address outside brackets, a zone id, or
an IPvFuture literal. Names compare case-insensitively and without a trailing dot; IPv6 addresses compare
by value (`[0:0::1]` is `[::1]`)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# A DNS name (letters, digits, '-', '_' for the odd internal name), labels of 1-63, 253 in all; also matches
# dotted IPv4 addresses, which are then checked as such.
_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_IPV4ISH = re.compile(r"^[0-9.]+$")


class InvalidHostHeader(ValueError):
    pass


@dataclass(frozen=True)
class Authority:
    host: str  # lower case, no trailing dot; an IPv6 address compressed, without brackets
    port: int | None


def parse_host(value: str) -> Authority:
    """The Host header's host and port, or InvalidHostHeader saying what is wrong."""
    if not value:
        raise InvalidHostHeader("the Host header is empty")
    if value != value.strip() or any(c.isspace() or ord(c) < 0x21 or ord(c) > 0x7E for c in value):
        raise InvalidHostHeader("the Host header holds whitespace or a non-ASCII character")
    for bad, why in (("@", "user information ('@')"), (",", "several hosts (',')"), ("/", "a path ('/')"),
                     ("?", "a query ('?')"), ("#", "a fragment ('#')"), ("%", "percent-encoding"),
                     ("\\", "a backslash")):
        if bad in value:
            raise InvalidHostHeader(f"the Host header holds {why}")
    if value.startswith("["):
        literal, sep, rest = value[1:].partition("]")
        if not sep:
            raise InvalidHostHeader("an IPv6 address in the Host header lacks its closing ']'")
        if literal[:1] in ("v", "V"):
            raise InvalidHostHeader("IPvFuture addresses are not served")
        try:
            host = ipaddress.IPv6Address(literal).compressed
        except ValueError:
            raise InvalidHostHeader(f"[{literal}] is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise InvalidHostHeader("only ':port' may follow an IPv6 address in the Host header")
        return Authority(host, _port(rest[1:]) if rest else None)
    if value.count(":") > 1:
        raise InvalidHostHeader("an IPv6 address in the Host header must be in brackets: [::1]:8000")
    name, sep, port = value.partition(":")
    if not _NAME.match(name) or len(name.rstrip(".")) > 253:
        raise InvalidHostHeader(f"{name!r} is not a host name")
    name = name.rstrip(".").lower()
    if _IPV4ISH.match(name):
        try:
            name = str(ipaddress.IPv4Address(name))
        except ValueError:
            raise InvalidHostHeader(f"{name!r} is not an IPv4 address") from None
    return Authority(name, _port(port) if sep else None)


def _port(text: str) -> int:
    if not _PORT.match(text) or not 0 < int(text) <= 65535:
        raise InvalidHostHeader(f"{text!r} is not a port (1-65535)")
    return int(text)


class HostAllowList:
    """`allowed_hosts` entries: exact names or addresses, `*.example.org` for its subdomains, `*` for any
    (a well-formed) host."""

    def __init__(self, entries: list[str]) -> None:
        self.any = "*" in entries
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        for entry in entries:
            entry = entry.strip().lower()
            if entry == "*":
                continue
            if entry.startswith("*."):
                self.suffixes.append("." + entry[2:].rstrip("."))
                continue
            literal = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                self.exact.add(ipaddress.ip_address(literal).compressed)
            except ValueError:
                self.exact.add(entry.rstrip("."))

    def check(self, value: str | None) -> str | None:
        """None when the header is well-formed and allowed, else why not."""
        if value is None:
            return "a Host header is required"
        try:
            host = parse_host(value).host
        except InvalidHostHeader as exc:
            return str(exc)
        if self.any or host in self.exact or any(host.endswith(s) for s in self.suffixes):
            return None
        return f"{host!r} is not served here: add it to MLIFE_GATEWAY_ALLOWED_HOSTS"
