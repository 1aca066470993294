from mlife_shared.errors import Conflict, Forbidden, MLifeError, NotFound, Unauthorized, Unprocessable


class InvalidToken(Unauthorized):
    """The API token is unknown or revoked: create a new one."""


class InvalidSession(Unauthorized):
    """The session has expired or was closed: log in again."""


class InvalidCredentials(Unauthorized):
    """Wrong user name or password."""


class CsrfFailed(Forbidden):
    """A mutating request with the session cookie needs the session's `X-CSRF-Token` header."""


class TooManyLoginAttempts(MLifeError):
    """Too many failed logins: wait and try again."""

    status_code = 429


class WeakSecret(Unprocessable):
    """The admin token or password is too short."""


class UserNotFound(NotFound):
    """No such user."""


class TokenNotFound(NotFound):
    """No such API token of yours."""


class UsernameTaken(Conflict):
    """A user with this name exists."""


class LastMaintainer(Conflict):
    """The last active maintainer cannot be demoted or disabled."""
