"""The function as the unit of the loop: the function of a document and of a dataset, plain tables
(a row's feature columns, a document's label and feature columns) and a dataset's modality

Revision ID: dam_0003
Revises: dam_0002
"""
import sqlalchemy as sa
from alembic import op

revision = "dam_0003"
down_revision = "dam_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("document") as batch:
        batch.add_column(sa.Column("function", sa.String(100), nullable=True))
        batch.add_column(sa.Column("label_column", sa.String(64), nullable=True))
        batch.add_column(sa.Column("feature_columns", sa.JSON(), nullable=True))
        batch.create_index(batch.f("ix_document_function"), ["function"])
    with op.batch_alter_table("document_row") as batch:
        batch.add_column(sa.Column("features", sa.JSON(), nullable=True))
    with op.batch_alter_table("dataset") as batch:
        batch.add_column(sa.Column("function", sa.String(100), nullable=True))
        batch.add_column(sa.Column("modality", sa.String(10), nullable=True))
        batch.create_index(batch.f("ix_dataset_function"), ["function"])


def downgrade() -> None:
    with op.batch_alter_table("dataset") as batch:
        batch.drop_index(batch.f("ix_dataset_function"))
        batch.drop_column("modality")
        batch.drop_column("function")
    with op.batch_alter_table("document_row") as batch:
        batch.drop_column("features")
    with op.batch_alter_table("document") as batch:
        batch.drop_index(batch.f("ix_document_function"))
        batch.drop_column("feature_columns")
        batch.drop_column("label_column")
        batch.drop_column("function")
