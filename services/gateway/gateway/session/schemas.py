from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gateway.user.schemas import Me


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    username: Annotated[str, Field(min_length=1, max_length=100)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class LoginResponse(Me):
    pass


class SessionState(BaseModel):
    authenticated: bool
    user: LoginResponse | None = None
