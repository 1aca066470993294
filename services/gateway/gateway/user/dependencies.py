from typing import Annotated

from fastapi import Depends, Request

from gateway.user.service import authenticate_token
from mlife_shared.app import SessionDep
from mlife_shared.auth import Identity
from mlife_shared.errors import Unauthorized


async def authenticated(request: Request, session: SessionDep) -> Identity:
    """The caller, from `Authorization: Bearer <API token>`."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("authentication required: send 'Authorization: Bearer <API token>'",
                           headers={"WWW-Authenticate": "Bearer"})
    return await authenticate_token(session, token.strip())


Authenticated = Annotated[Identity, Depends(authenticated)]
