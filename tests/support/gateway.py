"""The gateway in process, in front of real service processes or the stub upstream (tests/gateway)."""

from __future__ import annotations

import subprocess
import uuid

ADMIN_TOKEN = "mlf_test_admin_token_" + uuid.uuid4().hex
ADMIN_PASSWORD = "admin-password-" + uuid.uuid4().hex[:8]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Service:
    def __init__(self, name: str, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.name, self.port, self.proc = name, port, proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
