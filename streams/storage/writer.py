"""Writing rows to the Event Storage: one COPY and one INSERT per batch, idempotent.

Rows are copied into a session's temporary table and inserted from it with
`ON CONFLICT DO NOTHING`, so a batch holding records already stored (a redelivery after a
crash, a replay of a topic, the same event twice in one batch) inserts only the new ones.
COPY keeps a batch one round trip whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import psycopg
from psycopg import sql

from streams.storage.partitions import PARENT, ensure_partitions, month_of, partitions
from streams.storage.records import COLUMNS, StoredRecord

INCOMING = "event_store_incoming"


class EventWriter:
    """Writes batches on one connection (not shared: COPY owns it while it runs)."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self.conn = conn
        self._months: set[date] | None = None
        self._ready = False
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        self._copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(INCOMING), columns)
        self._insert = sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(PARENT), columns, columns, sql.Identifier(INCOMING))

    async def write(self, records: Sequence[StoredRecord]) -> int:
        """Store `records` in one transaction; returns how many were new."""
        if not records:
            return 0
        await self._prepare({month_of(record.occurred_at) for record in records})
        async with self.conn.transaction(), self.conn.cursor() as cursor:
            async with cursor.copy(self._copy) as copy:
                for record in records:
                    await copy.write_row(record.row())
            await cursor.execute(self._insert)
            inserted = cursor.rowcount
            await cursor.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(INCOMING)))
        return inserted

    async def _prepare(self, months: set[date]) -> None:
        if not self._ready:
            async with self.conn.transaction():
                await self.conn.execute(sql.SQL(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)"
                ).format(sql.Identifier(INCOMING), sql.Identifier(PARENT)))
            self._ready = True
        if self._months is None:
            self._months = set((await partitions(self.conn)).keys())
        missing = months - self._months
        if missing:
            await ensure_partitions(self.conn, missing)
            self._months |= missing

    def use(self, conn: psycopg.AsyncConnection) -> None:
        """Write on a new connection (the old one was lost): its session starts afresh."""
        self.conn = conn
        self._ready = False
        self._months = None

    def forget_partitions(self) -> None:
        """After partitions were dropped elsewhere (retention), look them up again."""
        self._months = None
