"""Alerts: rules per function, alerts with their grouping state, notifications

Revision ID: gateway_0006
Revises: gateway_0005
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "gateway_0006"
down_revision = "gateway_0005"
branch_labels = None
depends_on = None


def _rule() -> None:
    op.create_table(
        "alert_rule",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("function", sa.String(100), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("group_by", sa.JSON, nullable=False),
        sa.Column("group_wait_seconds", sa.Integer, nullable=False),
        sa.Column("repeat_interval_seconds", sa.Integer, nullable=False),
        sa.Column("resolve_after_seconds", sa.Integer, nullable=False),
        sa.Column("email_to", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rule"),
    )
    op.create_index("ix_alert_rule_function", "alert_rule", ["function"])


def _alert() -> None:
    op.create_table(
        "alert",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("rule_id", sa.Uuid, nullable=False),
        sa.Column("open_key", sa.String(64), nullable=True),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("function", sa.String(100), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("last_event_at", UTCDateTime, nullable=False),
        sa.Column("fired_at", UTCDateTime, nullable=True),
        sa.Column("last_notified_at", UTCDateTime, nullable=True),
        sa.Column("acknowledged_at", UTCDateTime, nullable=True),
        sa.Column("acknowledged_by", sa.String(100), nullable=True),
        sa.Column("resolved_at", UTCDateTime, nullable=True),
        sa.Column("resolved_by", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert"),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rule.id"], name="fk_alert_rule_id_alert_rule", ondelete="CASCADE"),
        sa.UniqueConstraint("open_key", name="uq_alert_open_key"),
    )
    op.create_index("ix_alert_rule_id", "alert", ["rule_id"])
    op.create_index("ix_alert_function", "alert", ["function"])
    op.create_index("ix_alert_status", "alert", ["status"])


def _notification() -> None:
    op.create_table(
        "alert_notification",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("alert_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("email_status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("sent_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_notification"),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"], name="fk_alert_notification_alert_id_alert",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_alert_notification_alert_id", "alert_notification", ["alert_id"])
    op.create_index("ix_alert_notification_due", "alert_notification", ["email_status", "next_attempt_at"])


def _samples_and_badcases() -> None:
    op.create_table(
        "alert_sample",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("rule_id", sa.Uuid, nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_sample"),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rule.id"], name="fk_alert_sample_rule_id_alert_rule",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_alert_sample_window", "alert_sample", ["rule_id", "at"])
    op.create_table(
        "alert_badcase",
        sa.Column("badcase_id", sa.Uuid, nullable=False),
        sa.Column("function", sa.String(100), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=True),
        sa.Column("model_version", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("badcase_id", name="pk_alert_badcase"),
    )


def upgrade() -> None:
    _rule()
    _alert()
    _notification()
    _samples_and_badcases()


def downgrade() -> None:
    op.drop_table("alert_badcase")
    op.drop_table("alert_sample")
    op.drop_table("alert_notification")
    op.drop_table("alert")
    op.drop_table("alert_rule")
