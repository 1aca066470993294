"""Browser sessions: login (rate-limited), the session cookie, CSRF tokens, logout.

The rate limit lives in the database (`login_failure` rows): it holds across gateway replicas and
restarts. It counts per account *and source* (the client's address, gateway.edge.source): a source is
refused with 429 once it has `login_max_failures_per_account` failures for one account, or
`login_max_failures_per_ip` for any accounts, inside `login_window_minutes`. Failures from elsewhere never
lock an account: whoever guesses at the admin's password from one address does not keep the admin out
from theirs. A success clears that account's failures from that source; a maintainer clears them all
(`POST /api/gateway/users/{id}/unlock`). Account names count case-insensitively."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.user.exceptions import CsrfFailed, InvalidCredentials, InvalidSession, TooManyLoginAttempts
from gateway.user.models import UserSession
from gateway.user.repository import LoginFailureRepository, UserRepository, UserSessionRepository
from gateway.user.service import hash_token, identity_of, verify_password
from mlife_shared.auth import Identity
from mlife_shared.db import Database, utcnow

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class LoginResult:
    identity: Identity
    cookie_value: str
    csrf_token: str
    max_age: int


class LoginService:
    """Logging in: its own short transactions (see `login`), so it takes the database, not a session."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def login(self, *, username: str, password: str, ip: str) -> LoginResult:
        """Three short transactions: the rate check, then either the recorded failure (which must
        survive the 401) or the new session. `ip` is the source key (gateway.edge.source.login_source)."""
        account = username.lower()[:100]
        async with self.db.transaction() as session:
            await self._check_rate(LoginFailureRepository(session), account, ip)
            user = await UserRepository(session).get_by_username(username)
            password_hash = user.password_hash if user is not None else None
        ok = await verify_password(password_hash, password) and user is not None and user.disabled_at is None
        if not ok:
            async with self.db.transaction() as session:
                failures = LoginFailureRepository(session)
                await failures.prune(utcnow() - timedelta(minutes=self.settings.login_window_minutes))
                await failures.record(account, ip[:64])
            raise InvalidCredentials()
        assert user is not None
        cookie_value, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        ttl = timedelta(hours=self.settings.session_ttl_hours)
        async with self.db.transaction() as session:
            await LoginFailureRepository(session).clear(account, ip=ip[:64])
            sessions = UserSessionRepository(session)
            await sessions.delete_expired(utcnow())
            await sessions.add(UserSession(user_id=user.id, token_hash=hash_token(cookie_value), csrf_token=csrf,
                                           expires_at=utcnow() + ttl))
        return LoginResult(identity=identity_of(user), cookie_value=cookie_value, csrf_token=csrf,
                           max_age=int(ttl.total_seconds()))

    async def _check_rate(self, failures: LoginFailureRepository, account: str, source: str) -> None:
        window = self.settings.login_window_minutes
        since = utcnow() - timedelta(minutes=window)
        retry = {"Retry-After": str(int(window * 60))}
        if await failures.count_since(since, username=account, ip=source) >= self.settings.login_max_failures_per_account:
            raise TooManyLoginAttempts(f"too many failed logins for {account!r} from your address; try again in "
                                       f"{window:g} minutes or ask a maintainer to unlock it", headers=retry)
        if await failures.count_since(since, ip=source) >= self.settings.login_max_failures_per_ip:
            raise TooManyLoginAttempts(f"too many failed logins from your address; try again in {window:g} minutes",
                                       headers=retry)


class SessionService:
    """Browser sessions of a request: checking the cookie (and the CSRF token), closing one. Never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.sessions = UserSessionRepository(session)

    async def authenticate(self, cookie_value: str, *, method: str, csrf_header: str | None) -> tuple[Identity, str]:
        row = await self.sessions.get_live_by_hash(hash_token(cookie_value), utcnow())
        if row is None or row.user.disabled_at is not None:
            raise InvalidSession()
        if method.upper() not in SAFE_METHODS:
            if not csrf_header or not hmac.compare_digest(csrf_header.encode(), row.csrf_token.encode()):
                raise CsrfFailed()
        return identity_of(row.user), row.csrf_token

    async def logout(self, cookie_value: str) -> None:
        await self.sessions.delete_by_hash(hash_token(cookie_value))
