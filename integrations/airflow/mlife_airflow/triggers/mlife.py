"""MLifePollTrigger: the triggerer's side of every deferrable MLife operator. It runs one of `mlife.steps`'
check-once functions every `poll_interval` seconds (in a thread: the SDK is synchronous) until it answers, and
fires one event: `done` with the answer, `blocked` (the deployment gate, with its message), or `failed`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlife import steps
from mlife_airflow.hooks.mlife import MLifeHook

CHECKS = frozenset({"check_task", "check_model_version", "check_deployment", "check_badcases",
                    "check_badcase_test_set"})


class MLifePollTrigger(BaseTrigger):
    def __init__(self, check: str, arguments: dict[str, Any], mlife_conn_id: str = MLifeHook.default_conn_name,
                 poll_interval: float = 2.0) -> None:
        super().__init__()
        if check not in CHECKS:
            raise ValueError(f"unknown MLife check {check!r}; one of {sorted(CHECKS)}")
        self.check, self.arguments = check, arguments
        self.mlife_conn_id, self.poll_interval = mlife_conn_id, poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"check": self.check, "arguments": self.arguments, "mlife_conn_id": self.mlife_conn_id,
                 "poll_interval": self.poll_interval})

    def _once(self) -> Any:
        with MLifeHook(self.mlife_conn_id).get_conn() as client:
            return getattr(steps, self.check)(client, **self.arguments)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                answer = await asyncio.to_thread(self._once)
            except steps.DeploymentBlocked as exc:
                yield TriggerEvent({"status": "blocked", "message": str(exc), "deployment": exc.deployment})
                return
            except steps.StepFailed as exc:
                yield TriggerEvent({"status": "failed", "message": str(exc)})
                return
            except steps.TRANSIENT as exc:
                if not steps.transient(exc):  # refused (auth, validation): waiting will not help
                    yield TriggerEvent({"status": "failed", "message": f"MLife refused {self.check}: {exc}"})
                    return
                self.log.warning("MLife %s: %s (polling again)", self.check, exc)
                answer = None
            if answer is not None:
                yield TriggerEvent({"status": "done", "result": answer})
                return
            await asyncio.sleep(self.poll_interval)
