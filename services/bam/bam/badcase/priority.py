"""The priority of a badcase (also in services/bam/README.md):

    score = 10 × function_weight × severity_factor × (1 + log2(frequency)) × 0.5 ^ (days since last seen / half_life)

severity_factor: low 0.5, medium 1, high 2, critical 4. function_weight comes from
`MLIFE_BAM_FUNCTION_WEIGHTS` (JSON object, default 1 for any function); half_life from
`MLIFE_BAM_PRIORITY_HALF_LIFE_DAYS` (default 14). It is recomputed whenever frequency, severity or
last_seen change. A manual priority set by triage overrides the score and is shown as such
(`priority_is_manual`); clearing it (null) returns to the score.
"""

from __future__ import annotations

import math
from datetime import datetime

SEVERITY_FACTOR = {"low": 0.5, "medium": 1.0, "high": 2.0, "critical": 4.0}


def score(*, frequency: int, severity: str, last_seen: datetime, now: datetime, function_weight: float = 1.0,
          half_life_days: float = 14.0) -> float:
    days = max((now - last_seen).total_seconds() / 86400.0, 0.0)
    recency = 0.5 ** (days / half_life_days) if half_life_days > 0 else 1.0
    value = 10.0 * function_weight * SEVERITY_FACTOR[severity] * (1.0 + math.log2(max(frequency, 1))) * recency
    return round(value, 4)
