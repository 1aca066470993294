"""The largest numbers the databases hold: a request parameter beyond them is a 422 that names it (bound
it with `Query(ge=…, le=…)` / `Field(…)`), never a 500 from the driver. Versions, attempts and counts are
INTEGER columns (32-bit in PostgreSQL); sizes and offsets are BIGINT."""

from __future__ import annotations

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
