from mlife_shared.errors import NotFound, Unprocessable


class QualityNotChecked(NotFound):
    """The document version was never checked by the cleaners (run them first)."""


class InvalidQualityRun(Unprocessable):
    """The cleaner run cannot be made as asked."""
