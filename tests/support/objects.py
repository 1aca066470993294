"""The S3 server `scripts/testenv.py` starts (MLIFE_TEST_S3_*)."""

from __future__ import annotations

import os

_MISSING = "MLIFE_TEST_S3_* is not set: run the tests with `make test` (scripts/testenv.py), which starts an S3 server"


def s3_settings() -> dict[str, object]:
    """As service settings fields."""
    endpoint = os.environ.get("MLIFE_TEST_S3_ENDPOINT")
    assert endpoint, _MISSING
    return dict(object_store="s3", s3_endpoint=endpoint, s3_access_key=os.environ["MLIFE_TEST_S3_ACCESS_KEY"],
                s3_secret_key=os.environ["MLIFE_TEST_S3_SECRET_KEY"],
                s3_bucket=os.environ.get("MLIFE_TEST_S3_BUCKET", "mlife-test"))


def s3_env() -> dict[str, str]:
    """As a service process's environment."""
    return {f"MLIFE_{key.upper()}": str(value) for key, value in s3_settings().items()}
