"""Alembic, per service, programmatically: `<service> migrate` upgrades the service's own database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from mlife_shared.db import Base, UTCDateTime


def alembic_config(migrations_package: str, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files(migrations_package)))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(migrations_package: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_package, database_url), revision)


def run_env() -> None:
    """The body of every service's `env.py`."""
    cfg = context.config
    if context.is_offline_mode():
        context.configure(url=cfg.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata,
                          literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def _run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

    async def _main() -> None:
        engine = async_engine_from_config(cfg.get_section(cfg.config_ini_section, {}), prefix="sqlalchemy.",
                                          poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
        await engine.dispose()

    _run_on_own_loop(_main)


def _run_on_own_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """`asyncio.run(main())`, in a thread of its own when the caller already runs a loop (tests, the API)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    errors: list[BaseException] = []

    def _thread() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=_thread)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def add_dead_letter_redrive() -> None:
    """The re-drive columns of `dead_letter` (every service's migration of that name calls this)."""
    with op.batch_alter_table("dead_letter") as batch:
        batch.add_column(sa.Column("redriven_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("redriven_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("redrive_note", sa.String(200), nullable=True))
        batch.add_column(sa.Column("redrive_error", sa.Text, nullable=True))
        batch.add_column(sa.Column("redrives", sa.Integer, nullable=False, server_default="0"))


def drop_dead_letter_redrive() -> None:
    with op.batch_alter_table("dead_letter") as batch:
        for column in ("redrives", "redrive_error", "redrive_note", "redriven_by", "redriven_at"):
            batch.drop_column(column)


def create_backbone_tables() -> None:
    """The outbox, inbox and dead-letter tables every service has (its first migration calls this)."""
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("envelope", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("published_at", UTCDateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("id", name="uq_outbox_id"),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["seq"], postgresql_where=sa.text("published_at IS NULL"),
                    sqlite_where=sa.text("published_at IS NULL"))
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("processed_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("stream_seq", sa.BigInteger, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letter"),
    )
    op.create_index("ix_dead_letter_consumer", "dead_letter", ["consumer"])
    op.create_index("ix_dead_letter_created_at", "dead_letter", ["created_at"])


def drop_backbone_tables() -> None:
    op.drop_table("dead_letter")
    op.drop_table("inbox")
    op.drop_table("outbox")


def create_plugin_seen() -> None:
    """`plugin_seen` (mlife_shared.plugins.models): in every service that hosts a plugin seam."""
    op.create_table(
        "plugin_seen",
        sa.Column("seam", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("entry_point", sa.String(300), nullable=False),
        sa.Column("distribution", sa.String(200), nullable=True),
        sa.Column("version", sa.String(60), nullable=True),
        sa.Column("api", sa.String(60), nullable=True),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
    )


def drop_plugin_seen() -> None:
    op.drop_table("plugin_seen")
