"""Dead letters can be re-driven: who applied one and when (the audit), and the last failed attempt

Revision ID: mtt_0005
Revises: mtt_0004
"""
from mlife_shared.migrations import add_dead_letter_redrive, drop_dead_letter_redrive

revision = "mtt_0005"
down_revision = "mtt_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_dead_letter_redrive()


def downgrade() -> None:
    drop_dead_letter_redrive()
