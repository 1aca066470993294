"""The gateway in process, in front of real service processes or the stub upstream (tests/gateway)."""

from __future__ import annotations

import uuid

from tests.support.platform import Service

ADMIN_TOKEN = "mlf_test_admin_token_" + uuid.uuid4().hex
ADMIN_PASSWORD = "admin-password-" + uuid.uuid4().hex[:8]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

__all__ = ["ADMIN_PASSWORD", "ADMIN_TOKEN", "AUTH", "Service"]
