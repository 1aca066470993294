"""The one error the media functions raise."""

from __future__ import annotations


class MediaError(ValueError):
    """The data cannot be decoded as the media asked for (or is beyond the decoding bounds); the message
    says which."""
