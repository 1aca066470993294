from mlife_shared.errors import BadRequest, MLifeError, NotFound, PayloadTooLarge, Unprocessable


class FileNotFound(NotFound):
    """No file with this MD5."""


class InvalidUpload(BadRequest):
    """The upload is malformed."""


class InvalidMd5(Unprocessable):
    """An MD5 must be 32 lowercase hexadecimal characters."""


class Md5Mismatch(Unprocessable):
    """The content's MD5 is not the one given."""


class UploadTooLarge(PayloadTooLarge):
    """The upload is larger than the configured limit."""


class UnsafeArchive(Unprocessable):
    """The archive has an entry that cannot be extracted safely."""


class ArchiveTooLarge(PayloadTooLarge):
    """The archive expands past the configured limits."""


class InvalidPath(Unprocessable):
    """The path is not a safe relative path."""


class NoPreview(NotFound):
    """This file has nothing to preview; download its content instead."""


class PreviewUndecodable(Unprocessable):
    """The file cannot be decoded for a preview, or the preview's parameters are wrong."""


class PreviewTooLarge(Unprocessable):
    """The file is larger than DAM decodes for a preview."""


class RangeNotSatisfiable(MLifeError, status=416):
    """The requested byte range is outside the file."""
