"""NATS auth callout: nats-server asks `$SYS.REQ.USER.AUTH` about every login that is not one of its static users
(natsauth: those are the callout's `auth_users`); the gateway answers. The request is a JWT the server signs
(`nats.connect_opts` holds the user and password, `nats.user_nkey` the key the answer must name); the answer is an
authorization-response JWT, signed by the callout issuer (an account nkey: MLIFE_GATEWAY_AUTH_CALLOUT_SEED), that
carries either an error or a user JWT with the subscriber's permissions (natsauth.subscriber_permissions) and an
expiry, after which the server disconnects the client and its reconnection is asked about again (a deleted or
rotated login stops working then at the latest; new connections are refused at once).

The responder runs in every gateway API process (a queue group: one answers each request) on the gateway's NATS
connection; claim formats as nats-io/jwt v2 (authorization_request, authorization_response, user)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from contextlib import suppress
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from gateway.subscribers.service import SubscriberService
from mlife_shared.db import Database
from mlife_shared.messaging.natsauth import AUTH_CALLOUT_SUBJECT, Consumer, Permissions, subscriber_permissions

log = structlog.get_logger(__name__)
QUEUE = "mlife-auth-callout"
ACCOUNT = "$G"  # nats-server's global account: where a config-file server places the users it is told of
HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], issuer: nkeys.KeyPair) -> str:
    """A JWT as nats-io/jwt writes it: ed25519-nkey signature over `header.payload`, jti a hash of the claims."""
    body = {**claims, "iss": issuer.public_key.decode(), "iat": int(time.time())}
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()).decode()
    signed = f"{_b64(json.dumps(HEADER).encode())}.{_b64(json.dumps(body, separators=(',', ':')).encode())}"
    return f"{signed}.{_b64(issuer.sign(signed.encode()))}"


def _verify(public_key: str, data: bytes, signature: bytes) -> None:
    """An nkey public key is base32 of prefix byte + ed25519 key + CRC16; nacl checks the signature."""
    raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    if len(raw) != 35:
        raise ValueError("not an nkey public key")
    nacl.signing.VerifyKey(raw[1:33]).verify(data, signature)


def decode_request(token: str) -> dict[str, Any]:
    """The server's authorization request, its signature checked against its issuer (the server's key)."""
    header, payload, signature = token.split(".")
    claims: dict[str, Any] = json.loads(_unb64(payload))
    _verify(str(claims["iss"]), f"{header}.{payload}".encode(), _unb64(signature))
    if claims.get("aud") != "nats-authorization-request" or claims.get("nats", {}).get("type") != "authorization_request":
        raise ValueError("not an authorization request")
    return claims


def user_jwt(issuer: nkeys.KeyPair, user_nkey: str, name: str, perms: Permissions, ttl: float) -> str:
    limits = {"pub": {"allow": perms.publish}, "sub": {"allow": perms.subscribe}, "subs": -1, "data": -1,
              "payload": -1, "type": "user", "version": 2}
    return encode({"sub": user_nkey, "aud": ACCOUNT, "name": name, "exp": int(time.time() + ttl), "nats": limits},
                  issuer)


def response(issuer: nkeys.KeyPair, request: dict[str, Any], *, jwt: str | None = None,
             error: str | None = None) -> bytes:
    nats_claims: dict[str, Any] = {"type": "authorization_response", "version": 2}
    if jwt is not None:
        nats_claims["jwt"] = jwt
    if error is not None:
        nats_claims["error"] = error
    return encode({"sub": request["nats"]["user_nkey"], "aud": request["nats"]["server_id"]["id"],
                   "nats": nats_claims}, issuer).encode()


async def answer(db: Database, issuer: nkeys.KeyPair, data: bytes, ttl: float) -> bytes | None:
    """The response to one request (None: not a request the server signed, left unanswered)."""
    try:
        request = decode_request(data.decode())
    except (ValueError, KeyError, TypeError, nacl.exceptions.CryptoError):
        log.warning("auth callout: not an authorization request; ignored")
        return None
    opts = request["nats"].get("connect_opts", {})
    user, password = str(opts.get("user") or ""), str(opts.get("pass") or "")
    async with db.transaction() as session:
        subscriber = await SubscriberService(session, None).authenticate(user, password)
        if subscriber is None:
            log.info("auth callout: refused", user=user)
            return response(issuer, request, error="unknown user or wrong password")
        perms = subscriber_permissions(subscriber.name, [Consumer(d.stream, d.durable) for d in subscriber.durables])
    log.info("auth callout: allowed", user=user)
    return response(issuer, request, jwt=user_jwt(issuer, request["nats"]["user_nkey"], user, perms, ttl))


class Responder:
    """Answers the callout on the API's NATS connection once it exists (it is made in the background)."""

    def __init__(self, db: Database, seed: str, ttl: float) -> None:
        self.db, self.issuer, self.ttl = db, nkeys.from_seed(seed.encode()), ttl
        self.task: asyncio.Task[None] | None = None

    async def _on_request(self, msg: Msg) -> None:
        try:
            reply = await answer(self.db, self.issuer, msg.data, self.ttl)
        except Exception:  # noqa: BLE001 - a database hiccup: no answer, the server refuses on its timeout
            log.exception("auth callout: failed")
            return
        if reply is not None and msg.reply:
            await msg.respond(reply)

    async def _run(self, connection: Any) -> None:
        while (nc := connection()) is None:
            await asyncio.sleep(0.1)
        assert isinstance(nc, NATS)
        await nc.subscribe(AUTH_CALLOUT_SUBJECT, queue=QUEUE, cb=self._on_request)
        log.info("auth callout: answering", subject=AUTH_CALLOUT_SUBJECT)

    def start(self, connection: Any) -> None:
        """`connection()` returns the NATS connection, or None until it is made."""
        self.task = asyncio.create_task(self._run(connection))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with suppress(BaseException):
                await self.task
