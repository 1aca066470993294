from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from gateway.config import Settings
from gateway.edge.source import client_address, login_source
from gateway.session.schemas import LoginRequest, LoginResponse, SessionState
from gateway.session.service import LoginService, SessionService
from mlife_shared.app import SessionDep
from mlife_shared.auth import Viewer
from mlife_shared.errors import MLifeError

router = APIRouter(tags=["session"])


async def login_service(request: Request) -> LoginService:
    return LoginService(request.app.state.db, request.app.state.settings)


async def session_service(session: SessionDep) -> SessionService:
    return SessionService(session)


LoginServiceDep = Annotated[LoginService, Depends(login_service)]
SessionServiceDep = Annotated[SessionService, Depends(session_service)]


def _client_ip(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return login_source(client_address(request.scope, settings.trusted_networks()))


@router.post("/login", responses={401: {"description": "wrong user name or password"},
                                  429: {"description": "too many failed logins from your address"}})
async def login(body: LoginRequest, request: Request, response: Response, service: LoginServiceDep) -> LoginResponse:
    """Log in with user name and password: sets the HttpOnly session cookie and returns the CSRF token
    to send as `X-CSRF-Token` on mutating requests."""
    settings: Settings = request.app.state.settings
    result = await service.login(username=body.username, password=body.password, ip=_client_ip(request))
    response.set_cookie(settings.session_cookie_name, result.cookie_value, max_age=result.max_age, path="/",
                        httponly=True, secure=settings.cookie_secure, samesite=settings.session_cookie_samesite)
    i = result.identity
    return LoginResponse(id=i.user_id, username=i.username, role=i.role, csrf_token=result.csrf_token)


@router.get("/session")
async def current_session(request: Request, service: SessionServiceDep) -> SessionState:
    """Public: whether this browser is logged in (and as whom, with its CSRF token). Lets the UI decide
    between the login page and the app without a 401."""
    settings: Settings = request.app.state.settings
    cookie = request.cookies.get(settings.session_cookie_name)
    if not cookie:
        return SessionState(authenticated=False)
    try:
        identity, csrf = await service.authenticate(cookie, method="GET", csrf_header=None)
    except MLifeError:
        return SessionState(authenticated=False)
    return SessionState(authenticated=True, user=LoginResponse(id=identity.user_id, username=identity.username,
                                                               role=identity.role, csrf_token=csrf))


@router.post("/logout", status_code=204, response_class=Response)
async def logout(_: Viewer, request: Request, service: SessionServiceDep) -> Response:
    """Close this browser session (API tokens are revoked under /tokens)."""
    settings: Settings = request.app.state.settings
    if cookie := request.cookies.get(settings.session_cookie_name):
        await service.logout(cookie)
    response = Response(status_code=204)
    response.delete_cookie(settings.session_cookie_name, path="/", httponly=True, secure=settings.cookie_secure,
                           samesite=settings.session_cookie_samesite)
    return response
