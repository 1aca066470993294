"""Media facts of audio/video files (duration, sample rate, channels, frame rate, frame count, codec) and the
per-function conversion of audio/video badcases on their way to test data

Revision ID: dam_0006
Revises: dam_0005
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "dam_0006"
down_revision = "dam_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("file") as batch:
        batch.add_column(sa.Column("duration", sa.Float(), nullable=True))
        batch.add_column(sa.Column("sample_rate", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("channels", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("fps", sa.Float(), nullable=True))
        batch.add_column(sa.Column("frame_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("codec", sa.String(40), nullable=True))
    op.create_table(
        "test_data_conversion",
        sa.Column("function", sa.String(100), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("function", name=op.f("pk_test_data_conversion")),
    )


def downgrade() -> None:
    op.drop_table("test_data_conversion")
    with op.batch_alter_table("file") as batch:
        for column in ("codec", "frame_count", "fps", "channels", "sample_rate", "duration"):
            batch.drop_column(column)
