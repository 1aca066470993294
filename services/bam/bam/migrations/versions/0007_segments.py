"""Audio/video segments: a badcase's time segment or frame range and the recording's duration (also each
occurrence's own segment), the segment-less fingerprint that overlapping reports share, and whether BAM holds the
data file itself.

Revision ID: bam_0007
Revises: bam_0006
"""
import sqlalchemy as sa
from alembic import op

revision = "bam_0007"
down_revision = "bam_0006"
branch_labels = None
depends_on = None

SEGMENT = (("segment_start", sa.Float), ("segment_end", sa.Float), ("frame_start", sa.Integer),
           ("frame_end", sa.Integer))


# Plain ADD/DROP COLUMN, never a batch (table copy): on SQLite a copy of `badcase` would lose the FTS5 triggers.
def upgrade() -> None:
    for name, kind in SEGMENT:
        op.add_column("badcase", sa.Column(name, kind(), nullable=True))
        op.add_column("occurrence", sa.Column(name, kind(), nullable=True))
    op.add_column("badcase", sa.Column("duration", sa.Float(), nullable=True))
    op.add_column("badcase", sa.Column("segment_base", sa.String(length=64), nullable=True))
    op.add_column("badcase", sa.Column("data_stored", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_badcase_segment_base", "badcase", ["segment_base"])


def downgrade() -> None:
    op.drop_index("ix_badcase_segment_base", "badcase")
    op.drop_column("badcase", "data_stored")
    op.drop_column("badcase", "segment_base")
    op.drop_column("badcase", "duration")
    for name, _ in SEGMENT:
        op.drop_column("occurrence", name)
        op.drop_column("badcase", name)
