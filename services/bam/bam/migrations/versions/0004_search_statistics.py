"""Planner statistics for full-text search (PostgreSQL).

With the default statistics target the planner has too few most-common-word entries for the expression
index `ix_badcase_search`: a rare word is estimated like a common one, and the planner walks the priority
index for hours' worth of rows instead of asking the GIN index (about 8 s at 1M badcases, bench/bam.py).
A target of 1000 on the indexed expression keeps enough words for rare ones to be estimated as rare.

Revision ID: bam_0004
Revises: bam_0003
"""
from alembic import op

revision = "bam_0004"
down_revision = "bam_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX ix_badcase_search ALTER COLUMN 1 SET STATISTICS 1000")
        op.execute("ANALYZE badcase")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX ix_badcase_search ALTER COLUMN 1 SET STATISTICS -1")
