"""Indexes for statistics and retrieval at 1M badcases.

Revision ID: bam_0003
Revises: bam_0002
"""
import sqlalchemy as sa
from alembic import op

revision = "bam_0003"
down_revision = "bam_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_badcase_status_fixed_at", "badcase", ["status", "fixed_at"])
    op.create_index("ix_badcase_wont_fix_updated_at", "badcase", ["updated_at"],
                    postgresql_where=sa.text("status = 'wont_fix'"), sqlite_where=sa.text("status = 'wont_fix'"))
    op.create_index("ix_badcase_labels", "badcase", ["ground_truth_label", "prediction_label"])
    op.create_index("ix_badcase_function_status_priority", "badcase", ["function", "status", "priority"])
    op.create_index("ix_occurrence_reported_at_badcase_id", "occurrence", ["reported_at", "badcase_id"])


def downgrade() -> None:
    op.drop_index("ix_occurrence_reported_at_badcase_id", "occurrence")
    op.drop_index("ix_badcase_function_status_priority", "badcase")
    op.drop_index("ix_badcase_labels", "badcase")
    op.drop_index("ix_badcase_wont_fix_updated_at", "badcase")
    op.drop_index("ix_badcase_status_fixed_at", "badcase")
