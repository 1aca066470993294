from fastapi import APIRouter

from gateway.user.dependencies import Authenticated
from gateway.user.schemas import Me

router = APIRouter(tags=["users"])


@router.get("/me")
async def me(identity: Authenticated) -> Me:
    """Who the token belongs to, and its role."""
    return Me(id=identity.user_id, username=identity.username, role=identity.role)
