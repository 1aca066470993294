from mlife_shared.errors import NotFound, Unprocessable


class WebhookNotFound(NotFound):
    """No webhook has this id."""


class UnknownSubjects(Unprocessable):
    """A subject pattern matches no public event."""
