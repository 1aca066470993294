import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mlife_shared.auth import Role

Username = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$",
                                description="letters, digits and _ . @ -; unique regardless of case")]
Password = Annotated[str, Field(min_length=12, max_length=1024, description="at least 12 characters")]


class Me(BaseModel):
    id: uuid.UUID
    username: str
    role: Role
    csrf_token: str | None = Field(None, description="send it as X-CSRF-Token on mutating requests made with "
                                                     "the session cookie (null for API tokens)")


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    username: Username
    password: Password
    role: Role = "viewer"


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Role | None = None
    disabled: bool | None = Field(None, description="true disables the user and closes their sessions")
    password: Password | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    current_password: Annotated[str, Field(min_length=1, max_length=1024)]
    new_password: Password


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=100)]


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="the secret, shown this once; only its hash is kept")


class UnlockResult(BaseModel):
    cleared_failures: int = Field(description="failed logins forgotten (from every address)")
