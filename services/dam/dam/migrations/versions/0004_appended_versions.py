"""Appended document versions: a version may extend the one before it (`since`), its rows being the rows added
since then that no version retired (`retired_in`); appending to the badcase test set writes the new rows only

Revision ID: dam_0004
Revises: dam_0003
"""
import sqlalchemy as sa
from alembic import op

revision = "dam_0004"
down_revision = "dam_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("document_version") as batch:
        batch.add_column(sa.Column("since", sa.Integer(), nullable=True))
    with op.batch_alter_table("document_row") as batch:
        batch.add_column(sa.Column("retired_in", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document_row") as batch:
        batch.drop_column("retired_in")
    with op.batch_alter_table("document_version") as batch:
        batch.drop_column("since")
