"""The function as the unit of the loop: grouped datasets and registered models know their function (and a
dataset its modality, a model its test splits); a task knows the model version it tests and which set it is.

Revision ID: mtt_0004
Revises: mtt_0003
"""
import sqlalchemy as sa
from alembic import op

revision = "mtt_0004"
down_revision = "mtt_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mtt_dataset") as batch:
        batch.add_column(sa.Column("function", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("modality", sa.String(length=10), nullable=True))
        batch.create_index(batch.f("ix_mtt_dataset_function"), ["function"])
    with op.batch_alter_table("mtt_model") as batch:
        batch.add_column(sa.Column("function", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("test_dataset_ids", sa.JSON(), nullable=True))
    with op.batch_alter_table("mtt_task") as batch:
        batch.add_column(sa.Column("set_kind", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("model_version_id", sa.Uuid(), nullable=True))
        batch.create_index(batch.f("ix_mtt_task_model_version_id"), ["model_version_id"])
        batch.create_index(batch.f("ix_mtt_task_function"), ["function"])


def downgrade() -> None:
    with op.batch_alter_table("mtt_task") as batch:
        batch.drop_index(batch.f("ix_mtt_task_function"))
        batch.drop_index(batch.f("ix_mtt_task_model_version_id"))
        batch.drop_column("model_version_id")
        batch.drop_column("set_kind")
    with op.batch_alter_table("mtt_model") as batch:
        batch.drop_column("test_dataset_ids")
        batch.drop_column("function")
    with op.batch_alter_table("mtt_dataset") as batch:
        batch.drop_index(batch.f("ix_mtt_dataset_function"))
        batch.drop_column("modality")
        batch.drop_column("function")
