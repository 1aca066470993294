"""Tasks, run requests, and the projections of grouped datasets and registered models.

Revision ID: mtt_0002
Revises: mtt_0001
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "mtt_0002"
down_revision = "mtt_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mtt_task",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("origin", sa.String(length=40), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=True),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("model", sa.JSON(), nullable=True),
        sa.Column("function", sa.String(length=200), nullable=True),
        sa.Column("code_location", sa.Text(), nullable=True),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("queue", sa.String(length=60), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("runner_id", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime, nullable=True),
        sa.Column("mlflow_experiment_id", sa.String(length=100), nullable=True),
        sa.Column("mlflow_run_id", sa.String(length=100), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=True),
        sa.Column("outcomes_key", sa.Text(), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("queued_at", UTCDateTime, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mtt_task")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_mtt_task_dedup_key")),
    )
    op.create_index(op.f("ix_mtt_task_kind"), "mtt_task", ["kind"])
    op.create_index(op.f("ix_mtt_task_status"), "mtt_task", ["status"])
    op.create_index(op.f("ix_mtt_task_owner"), "mtt_task", ["owner"])
    op.create_index(op.f("ix_mtt_task_created_at"), "mtt_task", ["created_at"])
    op.create_table(
        "mtt_run_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=60), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("published_at", UTCDateTime, nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["mtt_task.id"], name=op.f("fk_mtt_run_request_task_id_mtt_task"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mtt_run_request")),
    )
    op.create_index(op.f("ix_mtt_run_request_task_id"), "mtt_run_request", ["task_id"])
    op.create_index(op.f("ix_mtt_run_request_published_at"), "mtt_run_request", ["published_at"])
    op.create_table(
        "mtt_dataset",
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("manifest_key", sa.Text(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("is_badcase_test_set", sa.Boolean(), nullable=False),
        sa.Column("grouped_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_mtt_dataset")),
    )
    op.create_index(op.f("ix_mtt_dataset_is_badcase_test_set"), "mtt_dataset", ["is_badcase_test_set"])
    op.create_index(op.f("ix_mtt_dataset_grouped_at"), "mtt_dataset", ["grouped_at"])
    op.create_table(
        "mtt_model",
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("object_key", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("registered_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("model_version_id", name=op.f("pk_mtt_model")),
    )
    op.create_index(op.f("ix_mtt_model_name"), "mtt_model", ["name"])
    op.create_index(op.f("ix_mtt_model_registered_at"), "mtt_model", ["registered_at"])


def downgrade() -> None:
    op.drop_table("mtt_model")
    op.drop_table("mtt_dataset")
    op.drop_table("mtt_run_request")
    op.drop_table("mtt_task")
