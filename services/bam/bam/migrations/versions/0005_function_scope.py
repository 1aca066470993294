"""The function as the unit of the loop: where a badcase was found (task, deployment, model version), a tabular
badcase's feature row, the model version id of each outcome, and each function's production version.

Revision ID: bam_0005
Revises: bam_0004
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "bam_0005"
down_revision = "bam_0004"
branch_labels = None
depends_on = None

BADCASE_IDS = ("task_id", "deployment_id", "model_version_id")


def upgrade() -> None:
    with op.batch_alter_table("badcase") as batch:
        for name in BADCASE_IDS:
            batch.add_column(sa.Column(name, sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("features", sa.JSON(), nullable=True))
    for name in BADCASE_IDS:
        op.create_index(f"ix_badcase_{name}", "badcase", [name])
    with op.batch_alter_table("occurrence") as batch:
        batch.add_column(sa.Column("task_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("model_version_id", sa.Uuid(), nullable=True))
    with op.batch_alter_table("outcome") as batch:
        batch.add_column(sa.Column("model_version_id", sa.Uuid(), nullable=True))
    op.create_index("ix_outcome_model_version_id", "outcome", ["model_version_id"])
    op.create_table(
        "production_version",
        sa.Column("function", sa.String(length=200), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=True),
        sa.Column("model_name", sa.String(length=200), nullable=True),
        sa.Column("model_version", sa.String(length=100), nullable=True),
        sa.Column("promoted_at", UTCDateTime, nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("function", name=op.f("pk_production_version")),
    )


def downgrade() -> None:
    op.drop_table("production_version")
    op.drop_index("ix_outcome_model_version_id", "outcome")
    with op.batch_alter_table("outcome") as batch:
        batch.drop_column("model_version_id")
    with op.batch_alter_table("occurrence") as batch:
        batch.drop_column("model_version_id")
        batch.drop_column("task_id")
    for name in BADCASE_IDS:
        op.drop_index(f"ix_badcase_{name}", "badcase")
    with op.batch_alter_table("badcase") as batch:
        batch.drop_column("features")
        for name in BADCASE_IDS:
            batch.drop_column(name)
