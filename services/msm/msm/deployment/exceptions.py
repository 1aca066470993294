from mlife_shared.errors import Conflict, NotFound


class DeploymentNotFound(NotFound):
    """No such deployment."""


class DeploymentConflict(Conflict):
    """The deployment is not in a state that allows this."""
