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


# Plain ADD/DROP COLUMN, never a batch (table copy): on SQLite a copy of `badcase` would lose the FTS5 triggers
# and the rowids the full-text index points at.
def upgrade() -> None:
    for name in BADCASE_IDS:
        op.add_column("badcase", sa.Column(name, sa.Uuid(), nullable=True))
    op.add_column("badcase", sa.Column("features", sa.JSON(), nullable=True))
    for name in BADCASE_IDS:
        op.create_index(f"ix_badcase_{name}", "badcase", [name])
    op.add_column("occurrence", sa.Column("task_id", sa.Uuid(), nullable=True))
    op.add_column("occurrence", sa.Column("model_version_id", sa.Uuid(), nullable=True))
    op.add_column("outcome", sa.Column("model_version_id", sa.Uuid(), nullable=True))
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
    op.drop_column("outcome", "model_version_id")
    op.drop_column("occurrence", "model_version_id")
    op.drop_column("occurrence", "task_id")
    for name in BADCASE_IDS:
        op.drop_index(f"ix_badcase_{name}", "badcase")
    op.drop_column("badcase", "features")
    for name in BADCASE_IDS:
        op.drop_column("badcase", name)
