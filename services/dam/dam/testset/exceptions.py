from mlife_shared.errors import Unprocessable


class UnresolvableTestData(Unprocessable):
    """Some badcase data named by the event cannot be found; the event is retried, then dead-lettered."""
