from mlife_shared.errors import BadRequest, MLifeError, PayloadTooLarge


class InvalidImport(BadRequest):
    """The body cannot be read as an import file."""


class UnknownColumns(InvalidImport):
    """The CSV header names columns that are not fields of a badcase report."""


class RowTooLong(InvalidImport):
    """A CSV row is longer than the limit (often a quoted field that is never closed)."""


class ImportTooLarge(PayloadTooLarge):
    """The import is larger than this service accepts; split it into several requests."""


class ImportInterrupted(BadRequest):
    """The client went away before the body ended; nothing was imported."""


class UnsupportedImportFormat(MLifeError):
    """Send `Content-Type: text/csv` or `application/x-ndjson` (UTF-8), or `?format=csv|jsonl`."""

    status_code = 415
