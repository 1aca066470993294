"""Webhook targets must not reach MLife's own network: a URL whose host resolves to a loopback,
private, link-local, multicast, reserved or unspecified address is refused unless allow-listed. The
check runs when a subscription is saved and again before every send (DNS may have changed)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from mlife_shared.errors import Unprocessable


class UnsafeWebhookUrl(Unprocessable):
    """The webhook URL is not allowed."""


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def _allowed(host: str, ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address], allow: list[str]) -> bool:
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if ips and all(ip in network for ip in ips):
            return True
    return False


async def check_url(url: str, allow: list[str]) -> list[str]:
    """The resolved addresses of an acceptable webhook URL, or UnsafeWebhookUrl saying why not."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"the webhook URL is malformed: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("the webhook URL must be http or https")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("the webhook URL must not carry credentials")
    if not host:
        raise UnsafeWebhookUrl("the webhook URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookUrl("the webhook URL has an invalid port") from exc
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise UnsafeWebhookUrl(f"the webhook host {host!r} does not resolve") from exc
    ips = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not ips:
        raise UnsafeWebhookUrl(f"the webhook host {host!r} does not resolve")
    if _allowed(host, ips, allow):
        return [str(ip) for ip in ips]
    bad = [str(ip) for ip in ips if _blocked(ip)]
    if bad:
        raise UnsafeWebhookUrl(f"the webhook host {host!r} resolves to a non-public address ({', '.join(bad)}); "
                               "ask an operator to allow-list it (MLIFE_MSM_WEBHOOK_ALLOW_HOSTS)")
    return [str(ip) for ip in ips]
