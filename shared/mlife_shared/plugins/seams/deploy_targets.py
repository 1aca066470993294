"""The deploy_targets seam (placeholder protocol: the seam's owner defines its methods)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class DeployTarget(Protocol):
    name: str
    api: str
    description: str


PROTOCOL = DeployTarget


def conformance(plugin: Any) -> None:
    """Behavioural checks beyond the protocol's members (raise AssertionError with what is wrong)."""
