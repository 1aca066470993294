from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import joinedload

from gateway.user.models import ApiToken, LoginFailure, User, UserSession
from mlife_shared.repository import Repository


class UserRepository(Repository):
    async def count_active_maintainers(self) -> int:
        return await self.count(select(User).where(User.role == "maintainer", User.disabled_at.is_(None)))

    async def get_by_username(self, username: str) -> User | None:
        """Case-insensitive, as the unique index `uq_user_username_lower` is."""
        user: User | None = await self.one(select(User).where(func.lower(User.username) == func.lower(username)))
        return user

    async def list_users(self) -> Sequence[User]:
        users: Sequence[User] = await self.all(select(User).order_by(User.username))
        return users


class ApiTokenRepository(Repository):
    async def get_active_by_hash(self, token_hash: str) -> ApiToken | None:
        token: ApiToken | None = await self.one(
            select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
            .options(joinedload(ApiToken.user)))
        return token

    async def exists(self, token_hash: str) -> bool:
        return await self.one(select(ApiToken.id).where(ApiToken.token_hash == token_hash)) is not None

    async def get_for_user(self, token_id: uuid.UUID, user_id: uuid.UUID) -> ApiToken | None:
        token: ApiToken | None = await self.one(select(ApiToken).where(ApiToken.id == token_id,
                                                                        ApiToken.user_id == user_id))
        return token

    async def list_for_user(self, user_id: uuid.UUID) -> Sequence[ApiToken]:
        tokens: Sequence[ApiToken] = await self.all(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc()))
        return tokens


class UserSessionRepository(Repository):
    async def get_live_by_hash(self, token_hash: str, now: datetime) -> UserSession | None:
        row: UserSession | None = await self.one(
            select(UserSession).where(UserSession.token_hash == token_hash, UserSession.expires_at > now)
            .options(joinedload(UserSession.user)))
        return row

    async def delete_by_hash(self, token_hash: str) -> None:
        await self.session.execute(delete(UserSession).where(UserSession.token_hash == token_hash))

    async def delete_for_user(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(UserSession).where(UserSession.user_id == user_id))

    async def delete_expired(self, now: datetime) -> None:
        await self.session.execute(delete(UserSession).where(UserSession.expires_at <= now))


class LoginFailureRepository(Repository):
    async def record(self, username: str, ip: str) -> None:
        await self.add(LoginFailure(username=username, ip=ip))

    async def count_since(self, since: datetime, *, username: str | None = None, ip: str | None = None) -> int:
        stmt = select(LoginFailure.id).where(LoginFailure.created_at > since)
        if username is not None:
            stmt = stmt.where(LoginFailure.username == username)
        if ip is not None:
            stmt = stmt.where(LoginFailure.ip == ip)
        return await self.count(stmt)

    async def clear(self, username: str, *, ip: str | None = None) -> int:
        """An account's failures (from one source, or from all): how many rows went."""
        stmt = delete(LoginFailure).where(LoginFailure.username == username.lower())
        if ip is not None:
            stmt = stmt.where(LoginFailure.ip == ip)
        return len((await self.session.execute(stmt.returning(LoginFailure.id))).all())

    async def prune(self, before: datetime) -> None:
        await self.session.execute(delete(LoginFailure).where(LoginFailure.created_at <= before))
