from __future__ import annotations

from mlife_shared.repository import Repository


class FeedbackRepository(Repository):
    """The feedback rows (written with `add`; read back by nothing in MSM: BAM gets them as events)."""
