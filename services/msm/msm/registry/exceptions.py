from mlife_shared.errors import Conflict, NotFound, Unprocessable


class ModelNotFound(NotFound):
    """No such model or model version."""


class SourceNotAllowed(Unprocessable):
    """Models are taken only from MLife's own storage."""


class AliasConflict(Conflict):
    """The alias cannot be moved like this."""
