import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from gateway.user.schemas import (
    Me,
    PasswordChange,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UnlockResult,
    UserCreate,
    UserRead,
    UserUpdate,
)
from gateway.user.service import UserService
from mlife_shared.app import SessionDep
from mlife_shared.auth import Maintainer, Viewer

router = APIRouter(tags=["users"])


async def user_service(session: SessionDep) -> UserService:
    return UserService(session)


UserServiceDep = Annotated[UserService, Depends(user_service)]


@router.get("/me")
async def me(identity: Viewer, request: Request) -> Me:
    """Who is calling, their role, and (for a browser session) the CSRF token."""
    return Me(id=identity.user_id, username=identity.username, role=identity.role,
              csrf_token=request.scope.get("state", {}).get("csrf_token"))


@router.post("/me/password", status_code=204, response_class=Response)
async def change_password(body: PasswordChange, identity: Viewer, service: UserServiceDep) -> Response:
    """Change your own password (closes your other browser sessions)."""
    await service.change_password(identity.user_id, current=body.current_password, new=body.new_password)
    return Response(status_code=204)


@router.get("/tokens")
async def list_tokens(identity: Viewer, service: UserServiceDep) -> list[TokenRead]:
    """Your API tokens (never their secrets)."""
    return [TokenRead.model_validate(t) for t in await service.list_tokens(identity.user_id)]


@router.post("/tokens", status_code=201)
async def create_token(body: TokenCreate, identity: Viewer, service: UserServiceDep) -> TokenCreated:
    """A new API token for you; the secret is in this answer only."""
    row, secret = await service.create_token(identity.user_id, body.name)
    return TokenCreated(**TokenRead.model_validate(row).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response)
async def revoke_token(token_id: uuid.UUID, identity: Viewer, service: UserServiceDep) -> Response:
    """Revoke one of your API tokens; it stops working at once."""
    await service.revoke_token(identity.user_id, token_id)
    return Response(status_code=204)


@router.get("/users")
async def list_users(_: Maintainer, service: UserServiceDep) -> list[UserRead]:
    """Every user with their role (maintainers)."""
    return [UserRead.model_validate(u) for u in await service.list_users()]


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, _: Maintainer, service: UserServiceDep) -> UserRead:
    """Create a user with a role (maintainers)."""
    user = await service.create_user(username=body.username, password=body.password, role=body.role)
    return UserRead.model_validate(user)


@router.patch("/users/{user_id}")
async def update_user(user_id: uuid.UUID, body: UserUpdate, _: Maintainer, service: UserServiceDep) -> UserRead:
    """Change a user's role, disable or re-enable them, or set a new password (maintainers)."""
    user = await service.update_user(user_id, role=body.role, disabled=body.disabled,
                                     password=body.password)
    return UserRead.model_validate(user)


@router.post("/users/{user_id}/unlock")
async def unlock_user(user_id: uuid.UUID, _: Maintainer, service: UserServiceDep) -> UnlockResult:
    """Clear a user's failed logins from every address, so a source the login limit refuses may try again
    at once (maintainers)."""
    return UnlockResult(cleared_failures=await service.unlock_user(user_id))
