"""Fingerprints and match keys are stored with every badcase and compared with every new report: a change to how
they are computed (the import's faster path, the canonical-JSON cache) must give the same keys as before, or new
reports stop merging into stored badcases. The expected values were computed by the implementation of 26a6dd6."""

from __future__ import annotations

from typing import Any

import pytest

from bam.badcase import dedup

CASES: list[tuple[tuple[Any, ...], str, str]] = [
    (("Emotion ", "0123456789ABCDEF0123456789abcdef", [{"kind": "md5", "value": "0123456789ABCDEF0123456789abcdef"}],
      {"label": "Sad"}, "happy", None),
     "1d53f395dcda52f2316085cfd8a025277dadd5aa8fa037f3ebc7b99961760138",
     "c15464e1ad8d2a7fd657ff1d5e235d0713a85e4a9560a920175bef44e45dd536"),
    (("lane detection", None, [{"kind": "url", "value": "s3://bucket/a.png"}], {"label": "car", "boxes": [[1, 2, 3, 4]]},
      1.5, {"speed": 3}),
     "74c977311e9a050e64f16546d50c3a0a1a19b9a60abaa2919ab66259b6913d16",
     "5a1da3639893fa64e0fb3a0cec0b94d085d8ed29e6cdb5906101d035f14feb43"),
    (("speech", None, [], "  Ünïcode\u3000TEXT ", {"label": 3}, None),
     "0c9a230dabaac7e1d0df9c6bde8241c083871a2ce2abdac03f2d10ad759c874f",
     "2c9dad8a855382a95fc0ff1ba4bcef11a4b542210b0be2dbe7e3f7c939e16439"),
]


@pytest.mark.parametrize(("args", "fingerprint", "match_key"), CASES)
def test_keys_are_the_ones_stored_before(args: tuple[Any, ...], fingerprint: str, match_key: str) -> None:
    function, _, _, truth, predicted, _ = args
    for _ in range(2):  # the second time through the canonical-JSON cache
        assert dedup.fingerprint(*args) == fingerprint
        assert dedup.match_key(function, truth, predicted) == match_key
        assert dedup.keys(*args) == (fingerprint, match_key)
