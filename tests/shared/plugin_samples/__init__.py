"""Plugins for tests/shared/test_plugins.py, each broken (or not) in one way."""

from __future__ import annotations


class Good:
    name = "good"
    api = ">=1,<2"
    description = "a cleaner that flags nothing"

    def check(self, item: object) -> list[object]:
        return []


class FutureApi(Good):
    name = "future"
    api = ">=2"


class Raises:
    def __init__(self) -> None:
        raise RuntimeError("the plugin's own bug")


class Lacking:
    name = "lacking"
    description = "no api"


GOOD_OBJECT = Good()
