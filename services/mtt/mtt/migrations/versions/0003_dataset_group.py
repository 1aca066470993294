"""Grouped datasets remember their grouping (group_id) and name, to link a training task to its test set.

Revision ID: mtt_0003
Revises: mtt_0002
"""
import sqlalchemy as sa
from alembic import op

revision = "mtt_0003"
down_revision = "mtt_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mtt_dataset") as batch:
        batch.add_column(sa.Column("group_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch.create_index(batch.f("ix_mtt_dataset_group_id"), ["group_id"])


def downgrade() -> None:
    with op.batch_alter_table("mtt_dataset") as batch:
        batch.drop_index(batch.f("ix_mtt_dataset_group_id"))
        batch.drop_column("name")
        batch.drop_column("group_id")
