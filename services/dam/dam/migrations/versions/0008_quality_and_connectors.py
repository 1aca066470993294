"""Cleaners and labelling connectors: the findings of an upload on its file row, the findings and the latest run
of the cleaners over a document version, and a labelling task's connector with the tool's ids as text (Label
Studio's integer ids carried over)

Revision ID: dam_0008
Revises: dam_0007
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "dam_0008"
down_revision = "dam_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("file") as batch:
        batch.add_column(sa.Column("findings", sa.JSON(), nullable=True))
    op.create_table(
        "quality_finding",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("document_version", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("cleaner", sa.String(100), nullable=False),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("related", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_finding")),
    )
    op.create_index("ix_quality_finding_document_version", "quality_finding", ["document_id", "document_version"])
    op.create_table(
        "quality_run",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("document_version", sa.Integer(), nullable=False),
        sa.Column("cleaners", sa.JSON(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("checked_count", sa.Integer(), nullable=False),
        sa.Column("ran_by", sa.String(100), nullable=True),
        sa.Column("ran_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("document_id", "document_version", name=op.f("pk_quality_run")),
    )
    with op.batch_alter_table("labelling_task") as batch:
        batch.add_column(sa.Column("connector", sa.String(100), nullable=True))
        batch.add_column(sa.Column("external_project", sa.String(200), nullable=True))
    with op.batch_alter_table("labelling_item") as batch:
        batch.add_column(sa.Column("external_id", sa.String(200), nullable=True))
    op.execute("UPDATE labelling_task SET connector = 'labelstudio', external_project = CAST(ls_project_id AS "
               "VARCHAR(200)) WHERE ls_project_id IS NOT NULL")
    op.execute("UPDATE labelling_item SET external_id = CAST(ls_task_id AS VARCHAR(200)) WHERE ls_task_id IS NOT NULL")
    op.drop_index(op.f("ix_labelling_item_ls_task_id"), table_name="labelling_item")
    with op.batch_alter_table("labelling_item") as batch:
        batch.drop_column("ls_task_id")
    op.create_index(op.f("ix_labelling_item_external_id"), "labelling_item", ["external_id"])
    with op.batch_alter_table("labelling_task") as batch:
        batch.drop_column("ls_project_id")


def downgrade() -> None:
    with op.batch_alter_table("labelling_task") as batch:
        batch.add_column(sa.Column("ls_project_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("labelling_item") as batch:
        batch.add_column(sa.Column("ls_task_id", sa.Integer(), nullable=True))
    # only Label Studio's ids were integers; another connector's tasks lose their link to the tool
    op.execute("UPDATE labelling_task SET ls_project_id = CAST(external_project AS INTEGER) "
               "WHERE connector = 'labelstudio'")
    op.execute("UPDATE labelling_item SET ls_task_id = CAST(external_id AS INTEGER) WHERE task_id IN "
               "(SELECT id FROM labelling_task WHERE connector = 'labelstudio')")
    op.drop_index(op.f("ix_labelling_item_external_id"), table_name="labelling_item")
    op.create_index(op.f("ix_labelling_item_ls_task_id"), "labelling_item", ["ls_task_id"])
    with op.batch_alter_table("labelling_item") as batch:
        batch.drop_column("external_id")
    with op.batch_alter_table("labelling_task") as batch:
        batch.drop_column("external_project")
        batch.drop_column("connector")
    op.drop_table("quality_run")
    op.drop_index("ix_quality_finding_document_version", table_name="quality_finding")
    op.drop_table("quality_finding")
    with op.batch_alter_table("file") as batch:
        batch.drop_column("findings")
