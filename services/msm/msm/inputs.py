"""What every MSM input must be, whatever its field types: finite numbers and text without NUL
(PostgreSQL's JSON and text types refuse both, which would otherwise surface as a 500)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, model_validator

from mlife_shared.errors import Unprocessable


def check_value(value: Any, where: str = "body") -> None:
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{path}: NaN and infinity are not allowed")
        if isinstance(item, str) and "\x00" in item:
            raise ValueError(f"{path}: text must not contain NUL characters")
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}") for k, v in item.items())
            for key in item:
                if isinstance(key, str) and "\x00" in key:
                    raise ValueError(f"{path}: keys must not contain NUL characters")
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))


class StrictIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _finite_and_no_nul(cls, data: Any) -> Any:
        check_value(data)
        return data


async def reject_nul(request: Request) -> None:
    """Router dependency: no NUL in the path or the query (they reach database queries)."""
    if "\x00" in request.url.path or "\x00" in str(request.query_params) or \
            any("\x00" in v for v in request.path_params.values() if isinstance(v, str)) or \
            any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()):
        raise Unprocessable("the path or the query contains a NUL character")
