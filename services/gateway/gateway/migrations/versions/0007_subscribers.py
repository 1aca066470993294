"""Outside subscribers: NATS credentials and durable consumers

Revision ID: gateway_0007
Revises: gateway_0006
"""
import sqlalchemy as sa
from alembic import op

from mlife_shared.db import UTCDateTime

revision = "gateway_0007"
down_revision = "gateway_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("subjects", sa.JSON, nullable=False),
        sa.Column("filter", sa.JSON, nullable=False),
        sa.Column("password_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("rotated_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subscriber"),
        sa.UniqueConstraint("name", name="uq_subscriber_name"),
    )
    op.create_table(
        "subscriber_durable",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("subscriber_id", sa.Uuid, nullable=False),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("durable", sa.String(200), nullable=False),
        sa.Column("filter_subjects", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE",
                                name="fk_subscriber_durable_subscriber_id_subscriber"),
        sa.PrimaryKeyConstraint("id", name="pk_subscriber_durable"),
    )
    op.create_index("ix_subscriber_durable_subscriber_id", "subscriber_durable", ["subscriber_id"])
    op.create_table(
        "subscriber_replay",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("subscriber_id", sa.Uuid, nullable=False),
        sa.Column("subscriber_name", sa.String(40), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("since", UTCDateTime, nullable=True),
        sa.Column("stream", sa.String(100), nullable=True),
        sa.Column("sequence", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subscriber_replay"),
    )
    op.create_index("ix_subscriber_replay_subscriber_id", "subscriber_replay", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_subscriber_replay_subscriber_id", table_name="subscriber_replay")
    op.drop_table("subscriber_replay")
    op.drop_index("ix_subscriber_durable_subscriber_id", table_name="subscriber_durable")
    op.drop_table("subscriber_durable")
    op.drop_table("subscriber")
