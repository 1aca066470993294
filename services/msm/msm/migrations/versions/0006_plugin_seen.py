"""The plugins this service once had active (listed as absent when their package is removed)

Revision ID: msm_0006
Revises: msm_0005
"""
from mlife_shared.migrations import create_plugin_seen, drop_plugin_seen

revision = "msm_0006"
down_revision = "msm_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plugin_seen()


def downgrade() -> None:
    drop_plugin_seen()
