"""MSM's webhooks moved to the gateway (which sends them for every public event): their tables go. The
subscriptions are not copied: the gateway's webhooks take NATS subject patterns, a function filter and
Standard Webhooks secrets (`whsec_…`), so each is made again there (/api/gateway/webhooks).

Revision ID: msm_0005
Revises: msm_0004
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "msm_0005"
down_revision = "msm_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_subscription")


def downgrade() -> None:
    op.create_table(
        "webhook_subscription",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_subscription"),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.ForeignKeyConstraint(["subscription_id"], ["webhook_subscription.id"],
                                name="fk_webhook_delivery_subscription_id_webhook_subscription", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_delivery"),
    )
    op.create_index("ix_webhook_delivery_next_attempt_at", "webhook_delivery", ["next_attempt_at"])
    op.create_index("ix_webhook_delivery_status", "webhook_delivery", ["status"])
    op.create_index("ix_webhook_delivery_subscription_id", "webhook_delivery", ["subscription_id"])
