import uuid

from pydantic import BaseModel

from mlife_shared.auth import Role


class Me(BaseModel):
    id: uuid.UUID
    username: str
    role: Role
