from mlife_shared.errors import Unprocessable


class InvalidQualityRun(Unprocessable):
    """The cleaner run cannot be made as asked."""
