from mlife_shared.errors import Conflict, NotFound, Unprocessable


class DeploymentNotFound(NotFound):
    """No such deployment."""


class DeploymentConflict(Conflict):
    """The deployment is not in a state that allows this."""


class FunctionMissing(Unprocessable):
    """A model must declare its function before it is deployed."""
