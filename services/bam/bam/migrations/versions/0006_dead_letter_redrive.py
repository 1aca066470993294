"""Dead letters can be re-driven: who applied one and when (the audit), and the last failed attempt

Revision ID: bam_0006
Revises: bam_0005
"""
from mlife_shared.migrations import add_dead_letter_redrive, drop_dead_letter_redrive

revision = "bam_0006"
down_revision = "bam_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_dead_letter_redrive()


def downgrade() -> None:
    drop_dead_letter_redrive()
