from mlife_shared.errors import BadRequest, Conflict, MLifeError, NotFound, PayloadTooLarge, Unprocessable


class BadcaseNotFound(NotFound):
    """No badcase with this id."""


class InvalidCursor(BadRequest):
    """The cursor is not one this API gave out; start again without it."""


class InvalidTransition(Conflict):
    """This status change is not allowed."""


class InvalidReport(Unprocessable):
    """The report cannot be recorded as it is."""


class DataTooLarge(PayloadTooLarge):
    """The attached data file is too large."""


class NoPreview(NotFound):
    """There is no preview for this badcase's data."""


class NothingToAdd(Unprocessable):
    """None of the selected badcases can be added to test data."""


class InvalidPreview(Unprocessable):
    """This preview cannot be asked of this data (a view of another kind of data, a bad segment)."""


class RangeNotSatisfiable(MLifeError, status=416):
    """The byte range is not within the data."""
