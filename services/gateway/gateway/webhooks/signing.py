"""Standard Webhooks 1.0 signing: a secret is `whsec_<base64 of the key>`; a delivery carries `webhook-id`,
`webhook-timestamp` (unix seconds) and `webhook-signature`, space-separated `v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, one per live secret (two while a rotated secret is still honoured)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"
KEY_BYTES = 32  # the standard allows 24 to 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def headers(live_secrets: Sequence[str], msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in live_secrets)}
