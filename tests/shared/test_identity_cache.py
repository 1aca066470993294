"""`verify_identity` remembers tokens it verified (the gateway reuses one per user), and a remembered token is
still refused once it expires, under another secret, or with any byte changed."""

from __future__ import annotations

import time
import uuid

import pytest

from mlife_shared.auth import LEEWAY_SECONDS, Identity, sign_identity, verify_identity
from mlife_shared.errors import Unauthorized

SECRET = "s" * 40


def test_a_verified_token_verifies_again_until_it_expires() -> None:
    who = Identity(uuid.uuid4(), "tess", "tester")
    token = sign_identity(who, SECRET, ttl_seconds=1)
    assert verify_identity(token, SECRET) == who
    assert verify_identity(token, SECRET) == who  # remembered
    with pytest.raises(Unauthorized, match="invalid"):
        verify_identity(token, "another secret " + "x" * 30)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(Unauthorized, match="invalid"):
        verify_identity(tampered, SECRET)
    time.sleep(1 + LEEWAY_SECONDS + 0.5)  # past exp + the leeway: the remembered token is refused too
    with pytest.raises(Unauthorized, match="expired"):
        verify_identity(token, SECRET)
    with pytest.raises(Unauthorized, match="expired"):
        verify_identity(token, SECRET)


def test_each_token_is_its_own_identity() -> None:
    a, b = Identity(uuid.uuid4(), "ann", "viewer"), Identity(uuid.uuid4(), "bob", "maintainer")
    ta, tb = sign_identity(a, SECRET), sign_identity(b, SECRET)
    for _ in range(3):
        assert verify_identity(ta, SECRET) == a and verify_identity(tb, SECRET) == b
