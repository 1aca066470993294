"""Dead letters can be re-driven: who applied one and when (the audit), and the last failed attempt

Revision ID: dam_0005
Revises: dam_0004
"""
from mlife_shared.migrations import add_dead_letter_redrive, drop_dead_letter_redrive

revision = "dam_0005"
down_revision = "dam_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_dead_letter_redrive()


def downgrade() -> None:
    drop_dead_letter_redrive()
