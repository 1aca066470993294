"""The ObjectStore protocol with two backends: S3 (the `minio` client) and a local folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlife_shared.objectstore.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    ScopedStore,
    StoredObject,
    validate_key,
)
from mlife_shared.objectstore.local import LocalObjectStore

if TYPE_CHECKING:
    from mlife_shared.settings import ServiceSettings

__all__ = ["InvalidKey", "LocalObjectStore", "ObjectInfo", "ObjectNotFound", "ObjectStore", "ObjectTooLarge",
           "S3ObjectStore", "ScopedStore", "StoredObject", "make_store", "validate_key"]


def __getattr__(name: str) -> object:
    # The minio client costs ~0.35 s of import: load it only where the S3 backend is used.
    if name == "S3ObjectStore":
        from mlife_shared.objectstore.s3 import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(name)


def make_store(settings: ServiceSettings) -> ObjectStore:
    if settings.object_store == "s3":
        from mlife_shared.objectstore.s3 import S3ObjectStore

        return S3ObjectStore(endpoint=settings.s3_endpoint, access_key=settings.s3_access_key.get_secret_value(),
                             secret_key=settings.s3_secret_key.get_secret_value(), bucket=settings.s3_bucket,
                             secure=settings.s3_secure)
    assert settings.object_store_path is not None
    return LocalObjectStore(settings.object_store_path)
