from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from gateway.user.models import ApiToken, LoginFailure, User, UserSession


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(User)) or 0)

    async def count_active_maintainers(self) -> int:
        stmt = select(func.count()).select_from(User).where(User.role == "maintainer", User.disabled_at.is_(None))
        return int(await self.session.scalar(stmt) or 0)

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_username(self, username: str) -> User | None:
        """Case-insensitive, as the unique index `uq_user_username_lower` is."""
        return await self.session.scalar(select(User).where(func.lower(User.username) == func.lower(username)))

    async def list(self) -> Sequence[User]:
        return (await self.session.scalars(select(User).order_by(User.username))).all()

    async def add(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user


class ApiTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_active_by_hash(self, token_hash: str) -> ApiToken | None:
        stmt = (select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
                .options(joinedload(ApiToken.user)))
        return await self.session.scalar(stmt)

    async def exists(self, token_hash: str) -> bool:
        return (await self.session.scalar(select(ApiToken.id).where(ApiToken.token_hash == token_hash))) is not None

    async def get_for_user(self, token_id: uuid.UUID, user_id: uuid.UUID) -> ApiToken | None:
        return await self.session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))

    async def list_for_user(self, user_id: uuid.UUID) -> Sequence[ApiToken]:
        stmt = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc())
        return (await self.session.scalars(stmt)).all()

    async def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        await self.session.flush()
        return token


class UserSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: UserSession) -> UserSession:
        self.session.add(row)
        await self.session.flush()
        return row

    async def get_live_by_hash(self, token_hash: str, now: datetime) -> UserSession | None:
        stmt = (select(UserSession).where(UserSession.token_hash == token_hash, UserSession.expires_at > now)
                .options(joinedload(UserSession.user)))
        return await self.session.scalar(stmt)

    async def delete_by_hash(self, token_hash: str) -> None:
        await self.session.execute(delete(UserSession).where(UserSession.token_hash == token_hash))

    async def delete_for_user(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(UserSession).where(UserSession.user_id == user_id))

    async def delete_expired(self, now: datetime) -> None:
        await self.session.execute(delete(UserSession).where(UserSession.expires_at <= now))


class LoginFailureRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, username: str, ip: str) -> None:
        self.session.add(LoginFailure(username=username, ip=ip))
        await self.session.flush()

    async def count_since(self, since: datetime, *, username: str | None = None, ip: str | None = None) -> int:
        stmt = select(func.count()).select_from(LoginFailure).where(LoginFailure.created_at > since)
        if username is not None:
            stmt = stmt.where(LoginFailure.username == username)
        if ip is not None:
            stmt = stmt.where(LoginFailure.ip == ip)
        return int(await self.session.scalar(stmt) or 0)

    async def clear(self, username: str, *, ip: str | None = None) -> int:
        """An account's failures (from one source, or from all): how many rows went."""
        stmt = delete(LoginFailure).where(LoginFailure.username == username.lower())
        if ip is not None:
            stmt = stmt.where(LoginFailure.ip == ip)
        return int((await self.session.execute(stmt)).rowcount or 0)

    async def prune(self, before: datetime) -> None:
        await self.session.execute(delete(LoginFailure).where(LoginFailure.created_at <= before))
