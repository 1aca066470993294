from mlife_shared.errors import Unprocessable


class UnresolvableTestData(Unprocessable):
    """Some badcase data named by the event cannot be found; the event is retried, then dead-lettered."""


class UnconvertibleTestData(Unprocessable):
    """An audio/video item's segment cannot be converted (empty, outside the recording, undecodable); the
    event is retried, then dead-lettered, and nothing of it is stored."""


class InvalidFunction(Unprocessable):
    """The function name is not usable (up to 100 printable characters)."""
