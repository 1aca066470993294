"""The plugins this service once had active (listed as absent when their package is removed)

Revision ID: dam_0007
Revises: dam_0006
"""
from mlife_shared.migrations import create_plugin_seen, drop_plugin_seen

revision = "dam_0007"
down_revision = "dam_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plugin_seen()


def downgrade() -> None:
    drop_plugin_seen()
