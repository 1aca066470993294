from mlife_shared.errors import Conflict, NotFound, Unprocessable


class TaskNotFound(NotFound):
    """No such task."""


class InvalidTask(Unprocessable):
    """The task cannot be created or changed like this."""


class TaskStateConflict(Conflict):
    """The task's status does not allow this."""


class DatasetNotSeenYet(Exception):
    """A badcase test set the gate asks about whose `dataset.grouped` has not reached MTT yet: it comes on DAM's
    stream, the request on MSM's, in no fixed order. Raised so the consumer retries the request with backoff."""
