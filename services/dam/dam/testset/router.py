from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from dam.document.service import unstorable
from dam.testset.conversion import ConversionService
from dam.testset.exceptions import InvalidFunction
from dam.testset.schemas import ConversionRead, ConversionSettings
from mlife_shared.app import SessionDep
from mlife_shared.auth import Maintainer, Viewer

router = APIRouter(prefix="/test-data-conversions", tags=["test data"])


async def conversion_service(session: SessionDep) -> ConversionService:
    return ConversionService(session)


ServiceDep = Annotated[ConversionService, Depends(conversion_service)]
FunctionPath = Annotated[str, Path(min_length=1, max_length=100, description="The function (as badcases name it)")]


def _function(name: str) -> str:
    if unstorable(name) or any(ord(c) < 32 for c in name) or not name.strip():
        raise InvalidFunction(f"the function {name[:100]!r} is not a usable name (up to 100 printable characters)")
    return name.strip()


@router.get("/{function}")
async def get_conversion(function: FunctionPath, svc: ServiceDep, _: Viewer) -> ConversionRead:
    """How this function's audio/video badcases with a segment are converted when added to test data."""
    return await svc.get(_function(function))


@router.put("/{function}")
async def put_conversion(function: FunctionPath, body: ConversionSettings, svc: ServiceDep,
                         identity: Maintainer) -> ConversionRead:
    """Set the conversion: video `frames` at `fps` or a `clip` (WebM), audio clips at `sample_rate` (null: the
    recording's own)."""
    return await svc.put(_function(function), body, identity.username)
