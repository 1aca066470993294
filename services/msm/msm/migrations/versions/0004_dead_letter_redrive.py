"""Dead letters can be re-driven: who applied one and when (the audit), and the last failed attempt

Revision ID: msm_0004
Revises: msm_0003
"""
from mlife_shared.migrations import add_dead_letter_redrive, drop_dead_letter_redrive

revision = "msm_0004"
down_revision = "msm_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_dead_letter_redrive()


def downgrade() -> None:
    drop_dead_letter_redrive()
