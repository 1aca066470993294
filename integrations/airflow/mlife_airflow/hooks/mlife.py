"""MLifeHook: an Airflow connection (type `mlife`) turned into an MLife SDK client.

The connection's host is the gateway URL (`http://mlife.example:8000`, or a bare host with schema and port) and
its password an MLife API token (an engineer's; a maintainer's to move `production`). From the environment:

    AIRFLOW_CONN_MLIFE_DEFAULT='{"conn_type": "mlife", "host": "http://127.0.0.1:8000", "password": "mlf_…"}'"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from mlife.client import Client


class MLifeHook(BaseHook):
    conn_name_attr = "mlife_conn_id"
    default_conn_name = "mlife_default"
    conn_type = "mlife"
    hook_name = "MLife"

    def __init__(self, mlife_conn_id: str = default_conn_name, timeout: float = 60.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlife_conn_id = mlife_conn_id
        self.timeout = timeout

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {"hidden-fields": ["login", "extra"],
                "relabeling": {"host": "Gateway URL", "password": "API token"},
                "placeholders": {"host": "http://127.0.0.1:8000", "password": "mlf_…"}}

    def url(self) -> str:
        conn = self.get_connection(self.mlife_conn_id)
        host = (conn.host or "").rstrip("/")
        if not host:
            raise ValueError(f"connection {self.mlife_conn_id!r}: set its host to the MLife gateway URL")
        if "://" in host:
            return host
        return f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")

    def get_conn(self) -> Client:
        """A new SDK client (the caller closes it); the token is the connection's password."""
        conn = self.get_connection(self.mlife_conn_id)
        return Client(self.url(), token=conn.password or None, timeout=self.timeout)

    def test_connection(self) -> tuple[bool, str]:
        try:
            with self.get_conn() as client:
                me = client.me()
        except Exception as exc:  # noqa: BLE001 - Airflow's "Test" button shows the message
            return False, str(exc)
        return True, f"connected as {me.get('username')} ({me.get('role')})"
