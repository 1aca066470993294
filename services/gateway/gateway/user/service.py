"""Users and API tokens. Tokens are random (256 bits) and stored as their SHA-256: a slow hash adds
nothing to a secret that cannot be guessed, and the lookup stays one indexed read."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.user.exceptions import InvalidToken, WeakSecret
from gateway.user.models import ApiToken, User
from gateway.user.repository import ApiTokenRepository, UserRepository
from mlife_shared.auth import Identity
from mlife_shared.db import utcnow

TOKEN_PREFIX = "mlf_"
MIN_TOKEN_LENGTH = 24
MIN_PASSWORD_LENGTH = 12
ADMIN_USERNAME = "admin"
_hasher = PasswordHasher()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass
class AdminBootstrap:
    created: bool
    token: str | None = None
    password: str | None = None


async def ensure_admin(session: AsyncSession, *, token: str | None, password: str | None) -> AdminBootstrap:
    """First start: create the admin (maintainer). Its token is `token` when given, else generated and
    returned once; an explicitly given token is (re)attached on every start so it always works."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise WeakSecret(f"MLIFE_ADMIN_TOKEN must be at least {MIN_TOKEN_LENGTH} characters")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise WeakSecret(f"MLIFE_ADMIN_PASSWORD must be at least {MIN_PASSWORD_LENGTH} characters")
    users, tokens = UserRepository(session), ApiTokenRepository(session)
    admin = await users.get_by_username(ADMIN_USERNAME)
    if admin is not None:
        if token is not None and not await tokens.exists(hash_token(token)):
            await tokens.add(ApiToken(user_id=admin.id, name="MLIFE_ADMIN_TOKEN", token_hash=hash_token(token)))
        return AdminBootstrap(created=False)
    generated_token = token is None
    generated_password = password is None
    token = token or new_token()
    password = password or secrets.token_urlsafe(18)
    admin = await users.add(User(username=ADMIN_USERNAME, role="maintainer", password_hash=_hasher.hash(password)))
    await tokens.add(ApiToken(user_id=admin.id, name="first-start admin token", token_hash=hash_token(token)))
    return AdminBootstrap(created=True, token=token if generated_token else None,
                          password=password if generated_password else None)


async def authenticate_token(session: AsyncSession, token: str) -> Identity:
    row = await ApiTokenRepository(session).get_active_by_hash(hash_token(token))
    if row is None or row.user.disabled_at is not None:
        raise InvalidToken()
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return Identity(user_id=row.user.id, username=row.user.username, role=row.user.role)  # type: ignore[arg-type]
