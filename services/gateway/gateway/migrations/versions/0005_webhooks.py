"""Webhooks for every public event: subscriptions, deliveries and their log

Revision ID: gateway_0005
Revises: gateway_0004
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "gateway_0005"
down_revision = "gateway_0004"
branch_labels = None
depends_on = None


def _webhook() -> None:
    op.create_table(
        "webhook",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("subjects", sa.JSON, nullable=False),
        sa.Column("functions", sa.JSON, nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("previous_secret", sa.String(200), nullable=True),
        sa.Column("previous_secret_until", UTCDateTime, nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook"),
    )


def _delivery() -> None:
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("webhook_id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("test", sa.Boolean, nullable=False),
        sa.Column("replay_id", sa.Uuid, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_delivery"),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhook.id"], name="fk_webhook_delivery_webhook_id_webhook",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_webhook_delivery_webhook_id", "webhook_delivery", ["webhook_id"])
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["status", "next_attempt_at"])


def _attempt_and_replay() -> None:
    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("delivery_id", sa.Uuid, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempt"),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_delivery.id"],
                                name="fk_webhook_attempt_delivery_id_webhook_delivery", ondelete="CASCADE"),
    )
    op.create_index("ix_webhook_attempt_delivery_id", "webhook_attempt", ["delivery_id"])
    op.create_table(
        "webhook_replay",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("webhook_id", sa.Uuid, nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("since", UTCDateTime, nullable=True),
        sa.Column("stream", sa.String(100), nullable=True),
        sa.Column("sequence", sa.BigInteger, nullable=True),
        sa.Column("events_read", sa.Integer, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_replay"),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhook.id"], name="fk_webhook_replay_webhook_id_webhook",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_webhook_replay_webhook_id", "webhook_replay", ["webhook_id"])


def upgrade() -> None:
    _webhook()
    _delivery()
    _attempt_and_replay()


def downgrade() -> None:
    op.drop_table("webhook_replay")
    op.drop_table("webhook_attempt")
    op.drop_table("webhook_delivery")
    op.drop_table("webhook")
