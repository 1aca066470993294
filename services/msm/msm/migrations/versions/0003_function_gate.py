"""The function as the unit of the loop: each version's test splits, the kind of set, the version id and the
function of each testing result, testing failures, each function's badcase test sets, and each function's
default gate thresholds.

Revision ID: msm_0003
Revises: msm_0002
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "msm_0003"
down_revision = "msm_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.add_column(sa.Column("test_dataset_ids", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table("testing_result") as batch:
        batch.add_column(sa.Column("model_version_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("set_kind", sa.String(length=20), nullable=False, server_default="other"))
        batch.add_column(sa.Column("function", sa.String(length=200), nullable=True))
    op.create_index("ix_testing_result_model_version_id", "testing_result", ["model_version_id"])
    op.create_table(
        "testing_failure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("set_kind", sa.String(length=20), nullable=False),
        sa.Column("incompatible", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_testing_failure")),
    )
    op.create_index("ix_testing_failure_model_version_id", "testing_failure", ["model_version_id"])
    op.create_table(
        "badcase_test_set",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("function", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("grouped_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_badcase_test_set")),
        sa.UniqueConstraint("dataset_id", name=op.f("uq_badcase_test_set_dataset_id")),
    )
    op.create_index("ix_badcase_test_set_function", "badcase_test_set", ["function"])
    op.create_table(
        "function_thresholds",
        sa.Column("function", sa.String(length=200), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("function", name=op.f("pk_function_thresholds")),
    )


def downgrade() -> None:
    op.drop_table("function_thresholds")
    op.drop_index("ix_badcase_test_set_function", "badcase_test_set")
    op.drop_table("badcase_test_set")
    op.drop_index("ix_testing_failure_model_version_id", "testing_failure")
    op.drop_table("testing_failure")
    op.drop_index("ix_testing_result_model_version_id", "testing_result")
    with op.batch_alter_table("testing_result") as batch:
        batch.drop_column("function")
        batch.drop_column("set_kind")
        batch.drop_column("model_version_id")
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("test_dataset_ids")
