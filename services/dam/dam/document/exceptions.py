from mlife_shared.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable


class DocumentNotFound(NotFound):
    """No such document or version."""


class DocumentExists(Conflict):
    """A document with this name exists; add a version to it instead."""


class InvalidDocument(Unprocessable):
    """The document cannot be parsed or its rows are invalid."""


class DocumentTooLarge(PayloadTooLarge):
    """The document is larger than the configured limit."""


class UnknownColumn(Unprocessable):
    """The column is not one of the document's columns."""


class InvalidCell(Exception):
    """One row's bad cell, found while a document's rows are validated; every row's becomes one error of
    the InvalidDocument that refuses the import."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message
