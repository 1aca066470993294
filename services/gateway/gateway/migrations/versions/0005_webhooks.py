"""Webhooks for every public event: subscriptions, deliveries and their log

Revision ID: gateway_0005
Revises: gateway_0004
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "gateway_0005"
down_revision = "gateway_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
