"""The one repository base. Every repository of every service derives from `Repository`: it holds the
session, adds and flushes rows, reads by primary key (optionally locked), pages a statement, and knows
the dialect once — PostgreSQL locks rows with `FOR UPDATE` and upserts with its own `INSERT`; SQLite
(the embedded mode) serialises writers at `BEGIN IMMEDIATE` (see `db.make_engine`), so a lock there is a
no-op rather than a syntax error.

Repositories only `flush()`; the edge (request dependency, consumer runner, relay) commits."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

import asyncpg
import orjson
from sqlalchemy import JSON, Row, Select, Table, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mlife_shared.db import dialect_name

RowT = TypeVar("RowT")
AnySelect: TypeAlias = "Select[*tuple[Any, ...]]"  # a SELECT of any columns (SQLAlchemy 2.1 types each one)
SelectT = TypeVar("SelectT", bound=AnySelect)
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: its rows, the total that matched, and where the next page starts."""

    items: Sequence[T]
    total: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.items)
        return end if end < self.total else None


class Repository:
    """Base of every repository: `add`, `get`, `get_for_update`, `lock`, `insert` and `page`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return dialect_name(self.session)

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    async def add(self, row: RowT) -> RowT:
        self.session.add(row)
        await self.session.flush()
        return row

    async def add_all(self, rows: Iterable[object]) -> None:
        self.session.add_all(list(rows))
        await self.session.flush()

    async def get(self, model: builtins.type[RowT], key: Any) -> RowT | None:
        return await self.session.get(model, key)

    async def get_for_update(self, model: builtins.type[RowT], key: Any) -> RowT | None:
        """The row by primary key, locked until the transaction ends (PostgreSQL); a plain read on SQLite,
        whose writers are already serialised."""
        return await self.session.get(model, key, with_for_update=self.is_postgresql or None,
                                      populate_existing=self.is_postgresql)

    def lock(self, statement: SelectT, *, for_update: bool = True, skip_locked: bool = False, of: Any = None,
             key_share: bool = False) -> SelectT:
        """`statement … FOR UPDATE` where the dialect has row locks; unchanged otherwise. `skip_locked`: rows
        another transaction holds are left out (a work queue shared by replicas); `of`: lock only these
        tables' rows; `key_share`: FOR NO KEY UPDATE (inserts referencing the rows are not blocked)."""
        if not for_update or not self.is_postgresql:
            return statement
        return statement.with_for_update(skip_locked=skip_locked, of=of, key_share=key_share)

    def insert(self, table: Any) -> postgresql.Insert | sqlite.Insert:
        """The dialect's own INSERT (both have `on_conflict_do_nothing` / `on_conflict_do_update`)."""
        if self.is_postgresql:
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def copy_insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """INSERT many rows (every row has the same keys) in the session's transaction: on PostgreSQL one COPY
        on the session's own connection (a bulk import's thousands of rows: ~5x faster than executemany), each
        value converted by its column type's bind processor as an INSERT would send it (JSON columns with orjson:
        the same JSON value, compact); elsewhere (SQLite) an executemany INSERT. A duplicate key is IntegrityError
        either way."""
        if not rows:
            return
        if not self.is_postgresql:
            await self.session.execute(insert(table), list(rows))
            return
        connection = await self.session.connection()
        dialect = connection.dialect
        columns = list(rows[0])
        converters = []
        for i, name in enumerate(columns):
            kind = table.c[name].type
            if isinstance(kind, JSON) and not kind.none_as_null:
                converters.append((i, _json_text))
            elif (process := kind.dialect_impl(dialect).bind_processor(dialect)) is not None:
                converters.append((i, process))
        records = []
        last: list[tuple[Any, Any]] = [(_UNSET, None)] * len(converters)  # rows of a chunk share `now` etc.
        for row in rows:
            values = [row[c] for c in columns]
            for k, (i, convert) in enumerate(converters):
                value = values[i]
                seen, converted = last[k]
                if value is not seen:
                    converted = convert(value)
                    last[k] = (value, converted)
                values[i] = converted
            records.append(tuple(values))
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        try:
            await driver.copy_records_to_table(table.name, records=records, columns=columns)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(f"COPY {table.name}", None, exc) from exc

    async def core_rows(self, statement: AnySelect) -> Sequence[Row[Any]]:
        """The rows of a select of Core columns, run on the session's connection as a Core statement: no ORM
        compile state or row loading (on a 50-row page of 40 columns those were a tenth of the request's CPU)."""
        connection = await self.session.connection()
        return (await connection.execute(statement)).all()

    async def one(self, statement: AnySelect) -> Any:
        return await self.session.scalar(statement)

    async def all(self, statement: AnySelect) -> Sequence[Any]:
        return (await self.session.scalars(statement)).all()

    async def count(self, statement: AnySelect) -> int:
        """How many rows `statement` selects (its ORDER BY/LIMIT ignored)."""
        counted = select(func.count()).select_from(statement.order_by(None).limit(None).offset(None).subquery())
        return int(await self.session.scalar(counted) or 0)

    async def page(self, statement: AnySelect, *, limit: int, offset: int = 0) -> Page[Any]:
        """`statement` cut to one page, with the total it matched. `statement` must be ordered for stable
        pages."""
        items = (await self.session.scalars(statement.limit(limit).offset(offset))).all()
        total = offset + len(items) if len(items) < limit and (items or offset == 0) else await self.count(statement)
        return Page(items=items, total=total, offset=offset, limit=limit)


_UNSET = object()


def _json_text(value: Any) -> str:
    """A JSON column's value as JSON text (None is JSON null, as SQLAlchemy's JSON type stores it); orjson, with
    the standard library for what orjson refuses (integers over 64 bits, non-string keys)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)
