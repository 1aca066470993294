from mlife_shared.errors import NotFound, Unprocessable


class DatasetNotFound(NotFound):
    """No such dataset."""


class InvalidGrouping(Unprocessable):
    """The documents, filter or split cannot make a dataset."""
