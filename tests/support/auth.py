"""Who the tests are: the identity secret the services under test share, and signed role headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping

from mlife_shared.auth import IDENTITY_HEADER, Identity, Role, sign_identity

SECRET = "test-identity-secret-" + uuid.uuid4().hex


def as_role(role: Role, name: str | None = None, *, secret: str = SECRET, ttl_seconds: int = 3600) -> dict[str, str]:
    """The identity header the gateway would forward for a user `name` with `role`."""
    return {IDENTITY_HEADER: sign_identity(Identity(uuid.uuid4(), name or role, role), secret,
                                           ttl_seconds=ttl_seconds)}


class FreshRole(Mapping[str, str]):
    """Headers for a module-level constant: signed anew at each use, so they never expire however long the
    run (a constant signed at collection had expired by the time a 25-minute `make test` reached it)."""

    def __init__(self, role: Role, name: str | None = None) -> None:
        self.role, self.name = role, name

    def __getitem__(self, key: str) -> str:
        return as_role(self.role, self.name)[key]

    def __iter__(self) -> Iterator[str]:
        return iter([IDENTITY_HEADER])

    def __len__(self) -> int:
        return 1
