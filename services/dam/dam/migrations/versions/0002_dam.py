"""Files (by MD5) and their paths, documents with versions and rows, labelling tasks, datasets

Revision ID: dam_0002
Revises: dam_0001
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "dam_0002"
down_revision = "dam_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file",
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(20), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("name", sa.String(1024), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("uploaded_by", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("md5", name=op.f("pk_file")),
    )
    op.create_index(op.f("ix_file_size"), "file", ["size"])
    op.create_index(op.f("ix_file_media_type"), "file", ["media_type"])
    op.create_table(
        "file_path",
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_file_path")),
    )
    op.create_index(op.f("ix_file_path_md5"), "file_path", ["md5"])
    op.create_table(
        "document",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document")),
        sa.UniqueConstraint("name", name=op.f("uq_document_name")),
    )
    op.create_table(
        "document_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["document.id"], ondelete="CASCADE",
                                name=op.f("fk_document_version_document_id_document")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_version")),
        sa.UniqueConstraint("document_id", "version", name="uq_document_version_document_id"),
    )
    op.create_index(op.f("ix_document_version_document_id"), "document_version", ["document_id"])
    op.create_table(
        "document_row",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("path", sa.String(1024), nullable=True),
        sa.Column("annotation", sa.JSON(), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["document_version.id"], ondelete="CASCADE",
                                name=op.f("fk_document_row_version_id_document_version")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_row")),
    )
    op.create_index(op.f("ix_document_row_version_id"), "document_row", ["version_id"])
    op.create_index(op.f("ix_document_row_md5"), "document_row", ["md5"])
    op.create_index(op.f("ix_document_row_label"), "document_row", ["label"])
    op.create_table(
        "labelling_task",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("document_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("label_config", sa.Text(), nullable=False),
        sa.Column("prelabel_source", sa.String(300), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("items_key", sa.String(1024), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("completed_version", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labelling_task")),
    )
    op.create_index(op.f("ix_labelling_task_document_id"), "labelling_task", ["document_id"])
    op.create_index(op.f("ix_labelling_task_status"), "labelling_task", ["status"])
    op.create_table(
        "labelling_item",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("row_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("prelabel", sa.JSON(), nullable=True),
        sa.Column("ls_task_id", sa.Integer(), nullable=True),
        sa.Column("annotation", sa.JSON(), nullable=True),
        sa.Column("annotated_at", UTCDateTime, nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["labelling_task.id"], ondelete="CASCADE",
                                name=op.f("fk_labelling_item_task_id_labelling_task")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labelling_item")),
    )
    op.create_index(op.f("ix_labelling_item_task_id"), "labelling_item", ["task_id"])
    op.create_index(op.f("ix_labelling_item_ls_task_id"), "labelling_item", ["ls_task_id"])
    op.create_table(
        "dataset",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("manifest_key", sa.String(1024), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("is_badcase_test_set", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
        sa.UniqueConstraint("name", "purpose", "version", name="uq_dataset_name"),
    )
    op.create_index(op.f("ix_dataset_group_id"), "dataset", ["group_id"])
    op.create_index(op.f("ix_dataset_name"), "dataset", ["name"])
    op.create_table(
        "dataset_item",
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset.id"], ondelete="CASCADE",
                                name=op.f("fk_dataset_item_dataset_id_dataset")),
        sa.PrimaryKeyConstraint("dataset_id", "md5", name=op.f("pk_dataset_item")),
    )
    op.create_index(op.f("ix_dataset_item_md5"), "dataset_item", ["md5"])


def downgrade() -> None:
    for table in ("dataset_item", "dataset", "labelling_item", "labelling_task", "document_row",
                  "document_version", "document", "file_path", "file"):
        op.drop_table(table)
