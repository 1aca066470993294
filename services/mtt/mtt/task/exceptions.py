from mlife_shared.errors import Conflict, NotFound, Unprocessable


class TaskNotFound(NotFound):
    """No such task."""


class InvalidTask(Unprocessable):
    """The task cannot be created or changed like this."""


class TaskStateConflict(Conflict):
    """The task's status does not allow this."""
