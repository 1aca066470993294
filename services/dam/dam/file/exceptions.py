from mlife_shared.errors import BadRequest, NotFound, PayloadTooLarge, Unprocessable


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
