"""Identity between the gateway and the services: the gateway authenticates the caller and forwards a
short-lived signed identity (`X-MLife-Identity`, HS256 JWT); every service verifies it, so a service
reached directly is not open."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, Request

from mlife_shared.errors import Forbidden, Unauthorized

IDENTITY_HEADER = "X-MLife-Identity"
ISSUER = "mlife-gateway"
AUDIENCE = "mlife-services"
Role = Literal["viewer", "tester", "engineer", "maintainer"]
ROLES: tuple[Role, ...] = ("viewer", "tester", "engineer", "maintainer")


@dataclass(frozen=True)
class Identity:
    user_id: uuid.UUID
    username: str
    role: Role

    def has(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def sign_identity(identity: Identity, secret: str, *, ttl_seconds: int = 60) -> str:
    now = int(time.time())
    claims = {"sub": str(identity.user_id), "name": identity.username, "role": identity.role,
              "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


LEEWAY_SECONDS = 5
# Tokens already verified, with their expiry: the gateway reuses a user's signed identity for its lifetime, so
# a service sees the same token on every request of a session, and decoding it again was ~5 % of a small
# request's CPU (bench/profiles/bam.md). A token's bytes carry its signature, so the same bytes with the same
# secret verify the same way; only the time checks change, and expiry is checked again on every hit.
_VERIFIED: dict[tuple[str, str], tuple[Identity, float]] = {}
_VERIFIED_MAX = 4096


def verify_identity(token: str, secret: str) -> Identity:
    known = _VERIFIED.get((token, secret))
    if known is not None:
        if time.time() <= known[1] + LEEWAY_SECONDS:
            return known[0]
        _VERIFIED.pop((token, secret), None)
        raise Unauthorized("the forwarded identity has expired")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub", "role"]}, leeway=LEEWAY_SECONDS)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the forwarded identity has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("the forwarded identity is invalid") from exc
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthorized("the forwarded identity has an unknown role")
    identity = Identity(user_id=uuid.UUID(claims["sub"]), username=str(claims.get("name", "")), role=role)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[(token, secret)] = (identity, float(claims["exp"]))
    return identity


async def current_identity(request: Request) -> Identity:
    # async: FastAPI runs a sync dependency in a thread pool, two hops per request for nothing (HS256 is µs).
    token = request.headers.get(IDENTITY_HEADER)
    if not token:
        raise Unauthorized("authentication required: call MLife through the gateway with a token",
                           headers={"WWW-Authenticate": "Bearer"})
    secret: str = request.app.state.settings.identity_secret.get_secret_value()
    return verify_identity(token, secret)


def require_role(role: Role) -> Callable[[Identity], Coroutine[Any, Any, Identity]]:
    async def _dependency(identity: Annotated[Identity, Depends(current_identity)]) -> Identity:
        if not identity.has(role):
            raise Forbidden(f"this needs the {role} role; you are {identity.role}")
        return identity

    _dependency.__name__ = f"require_{role}"
    return _dependency


CurrentUser = Annotated[Identity, Depends(current_identity)]
Viewer = Annotated[Identity, Depends(require_role("viewer"))]
Tester = Annotated[Identity, Depends(require_role("tester"))]
Engineer = Annotated[Identity, Depends(require_role("engineer"))]
Maintainer = Annotated[Identity, Depends(require_role("maintainer"))]
