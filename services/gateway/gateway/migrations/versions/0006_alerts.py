"""Alerts: rules per function, alerts with their grouping state, notifications

Revision ID: gateway_0006
Revises: gateway_0005
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "gateway_0006"
down_revision = "gateway_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
