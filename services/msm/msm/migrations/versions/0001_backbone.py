"""The backbone tables: outbox, inbox, dead letters.

Revision ID: msm_0001
Revises:
"""
from mlife_shared.migrations import create_backbone_tables, drop_backbone_tables

revision = "msm_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_backbone_tables()


def downgrade() -> None:
    drop_backbone_tables()
