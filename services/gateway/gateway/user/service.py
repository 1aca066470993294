"""Users and API tokens. Tokens are random (256 bits) and stored as their SHA-256: a slow hash adds
nothing to a secret that cannot be guessed, and the lookup stays one indexed read. Passwords are
argon2id (argon2-cffi's defaults)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.user.exceptions import (
    InvalidCredentials,
    InvalidToken,
    LastMaintainer,
    TokenNotFound,
    UsernameTaken,
    UserNotFound,
    WeakSecret,
)
from gateway.user.models import ApiToken, User
from gateway.user.repository import ApiTokenRepository, LoginFailureRepository, UserRepository, UserSessionRepository
from mlife_shared.auth import Identity, Role
from mlife_shared.db import utcnow

TOKEN_PREFIX = "mlf_"
MIN_TOKEN_LENGTH = 24
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
ADMIN_USERNAME = "admin"
_hasher = PasswordHasher()


@cache
def dummy_hash() -> str:
    """Verified against when the user does not exist, so a wrong name costs the same time as a wrong password.
    Made on first use, not at import (an argon2 hash costs tens of milliseconds), then kept."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakSecret(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakSecret(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """argon2 costs tens of milliseconds of CPU: run it off the event loop. Without a hash (no such user) the
    same work is done against `dummy_hash()`, and the answer is no."""

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or dummy_hash(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


def identity_of(user: User) -> Identity:
    return Identity(user_id=user.id, username=user.username, role=user.role)


@dataclass
class AdminBootstrap:
    created: bool
    token: str | None = None
    password: str | None = None


class UserService:
    """Users (maintainers manage them), their passwords and their API tokens. Never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.tokens = ApiTokenRepository(session)

    async def ensure_admin(self, *, token: str | None, password: str | None) -> AdminBootstrap:
        """First start: create the admin (maintainer). Its token is `token` when given, else generated and
        returned once; an explicitly given token is (re)attached on every start so it always works."""
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise WeakSecret(f"MLIFE_ADMIN_TOKEN must be at least {MIN_TOKEN_LENGTH} characters")
        if password is not None and len(password) < MIN_PASSWORD_LENGTH:
            raise WeakSecret(f"MLIFE_ADMIN_PASSWORD must be at least {MIN_PASSWORD_LENGTH} characters")
        admin = await self.users.get_by_username(ADMIN_USERNAME)
        if admin is not None:
            if token is not None and not await self.tokens.exists(hash_token(token)):
                await self.tokens.add(ApiToken(user_id=admin.id, name="MLIFE_ADMIN_TOKEN",
                                               token_hash=hash_token(token)))
            return AdminBootstrap(created=False)
        generated_token = token is None
        generated_password = password is None
        token = token or new_token()
        password = password or secrets.token_urlsafe(18)
        admin = await self.users.add(User(username=ADMIN_USERNAME, role="maintainer",
                                          password_hash=await hash_password(password)))
        await self.tokens.add(ApiToken(user_id=admin.id, name="first-start admin token", token_hash=hash_token(token)))
        return AdminBootstrap(created=True, token=token if generated_token else None,
                              password=password if generated_password else None)

    async def authenticate_token(self, token: str) -> Identity:
        row = await self.tokens.get_active_by_hash(hash_token(token))
        if row is None or row.user.disabled_at is not None:
            raise InvalidToken()
        now = utcnow()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            row.last_used_at = now
        return identity_of(row.user)

    # --- users (maintainers) ----------------------------------------------------------------------

    async def list_users(self) -> Sequence[User]:
        return await self.users.list_users()

    async def get_user(self, user_id: uuid.UUID) -> User:
        user = await self.users.get(User, user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user

    async def create_user(self, *, username: str, password: str, role: Role) -> User:
        check_password_strength(password)
        if (existing := await self.users.get_by_username(username)) is not None:
            raise UsernameTaken(f"a user named {existing.username!r} exists (user names ignore case)")
        password_hash = await hash_password(password)
        try:
            async with self.session.begin_nested():  # a concurrent create of the same name loses with a 409, not a 500
                return await self.users.add(User(username=username, role=role, password_hash=password_hash))
        except IntegrityError:
            raise UsernameTaken(f"a user named {username!r} exists (user names ignore case)") from None

    async def unlock_user(self, user_id: uuid.UUID) -> int:
        """Forget the user's failed logins from every source, so none is refused any longer: how many went."""
        user = await self.get_user(user_id)
        return await LoginFailureRepository(self.session).clear(user.username)

    async def update_user(self, user_id: uuid.UUID, *, role: Role | None, disabled: bool | None,
                          password: str | None) -> User:
        user = await self.get_user(user_id)
        losing_maintainer = user.role == "maintainer" and user.disabled_at is None and (
            (role is not None and role != "maintainer") or disabled is True)
        if losing_maintainer and await self.users.count_active_maintainers() <= 1:
            raise LastMaintainer(f"{user.username} is the last active maintainer: promote another user first")
        if role is not None:
            user.role = role
        if disabled is True and user.disabled_at is None:
            user.disabled_at = utcnow()
            await UserSessionRepository(self.session).delete_for_user(user.id)
        elif disabled is False:
            user.disabled_at = None
        if password is not None:
            check_password_strength(password)
            user.password_hash = await hash_password(password)
            await UserSessionRepository(self.session).delete_for_user(user.id)
        await self.session.flush()
        return user

    async def change_password(self, user_id: uuid.UUID, *, current: str, new: str) -> None:
        """A user's own password change: the current one must be right (closes their other browser sessions)."""
        user = await self.users.get(User, user_id)
        if user is None:
            raise UserNotFound()
        if not await verify_password(user.password_hash, current):
            raise InvalidCredentials("the current password is wrong")
        await self.update_user(user.id, role=None, disabled=None, password=new)

    # --- API tokens (each user their own) ---------------------------------------------------------

    async def create_token(self, user_id: uuid.UUID, name: str) -> tuple[ApiToken, str]:
        secret = new_token()
        row = await self.tokens.add(ApiToken(user_id=user_id, name=name, token_hash=hash_token(secret)))
        return row, secret

    async def list_tokens(self, user_id: uuid.UUID) -> Sequence[ApiToken]:
        return await self.tokens.list_for_user(user_id)

    async def revoke_token(self, user_id: uuid.UUID, token_id: uuid.UUID) -> None:
        row = await self.tokens.get_for_user(token_id, user_id)
        if row is None:
            raise TokenNotFound(f"you have no API token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            await self.session.flush()
