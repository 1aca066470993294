from mlife_shared.errors import Unauthorized, Unprocessable


class InvalidToken(Unauthorized):
    """The API token is unknown or revoked: create a new one."""


class WeakSecret(Unprocessable):
    """The admin token or password is too short."""
