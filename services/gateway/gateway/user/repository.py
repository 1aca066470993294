from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from gateway.user.models import ApiToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(User)) or 0)

    async def get_by_username(self, username: str) -> User | None:
        return await self.session.scalar(select(User).where(User.username == username))

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

    async def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        await self.session.flush()
        return token
