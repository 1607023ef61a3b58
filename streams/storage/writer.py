"""Writing rows to the Event Storage: one COPY and one INSERT per batch, idempotent.

Rows are copied into a session's temporary table and inserted from it with
`ON CONFLICT DO NOTHING`, so a batch holding records already stored (a redelivery after a
crash, a replay of a topic, the same event twice in one batch) inserts only the new ones.
COPY keeps a batch one round trip whatever its size.

The batch is formatted here as COPY's text format in one piece (`copy_text`) and written
with one call: formatting row by row through the driver's adapters took a quarter of the
sink's time (bench.storage_sink, profiled).
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
    """Writes batches on one connection (not shared: COPY owns it while it runs).

    Blocking on purpose: the sink runs it in a thread of its own, where libpq waits for
    PostgreSQL without holding the GIL, so the next batch is polled and decoded meanwhile.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._months: set[date] | None = None
        self._ready = False
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        self._copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(INCOMING), columns)
        self._direct = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(PARENT), columns)
        self._insert = sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(PARENT), columns, columns, sql.Identifier(INCOMING))

    def write(self, records: Sequence[StoredRecord]) -> int:
        """Store `records` in one transaction; returns how many were new."""
        if not records:
            return 0
        self._prepare({month_of(record.occurred_at) for record in records})
        data = copy_text(records)
        with self.conn.transaction(), self.conn.cursor() as cursor:
            try:  # the common case, nothing stored yet: straight in, in a savepoint
                with self.conn.transaction(), cursor.copy(self._direct) as copy:
                    copy.write(data)
                return len(records)
            except psycopg.errors.UniqueViolation:
                pass  # some are stored already (a redelivery, a replay): only the new ones
            with cursor.copy(self._copy) as copy:
                copy.write(data)
            cursor.execute(self._insert)
            inserted = cursor.rowcount
            cursor.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(INCOMING)))
        return inserted

    def _prepare(self, months: set[date]) -> None:
        if not self._ready:
            with self.conn.transaction():
                self.conn.execute(sql.SQL(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)"
                ).format(sql.Identifier(INCOMING), sql.Identifier(PARENT)))
            self._ready = True
        if self._months is None:
            self._months = set(partitions(self.conn).keys())
        missing = months - self._months
        if missing:
            ensure_partitions(self.conn, missing)
            self._months |= missing

    def use(self, conn: psycopg.Connection) -> None:
        """Write on a new connection (the old one was lost): its session starts afresh."""
        self.conn = conn
        self._ready = False
        self._months = None

    def forget_partitions(self) -> None:
        """After partitions were dropped elsewhere (retention), look them up again."""
        self._months = None


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                          "\x00": "\ufffd"})
_NULL = "\\N"


def _field(value: str | None) -> str:
    """A text field of COPY's text format; NUL, which PostgreSQL's text refuses, becomes
    U+FFFD."""
    if value is None:
        return _NULL
    return value if _plain(value) else value.translate(_ESCAPES)


def _plain(text: str) -> bool:
    """Nothing COPY's text format escapes (`in` scans faster than a regular expression)."""
    return not ("\\" in text or "\t" in text or "\n" in text or "\r" in text
                or "\x00" in text)


def _fields(values: tuple[str | None, ...]) -> str:
    """Text fields joined by tabs; one scan of them all finds the usual case, where none
    needs escaping (a call per field was a tenth of the sink's time)."""
    if _plain("".join([value for value in values if value is not None])):
        return "\t".join([_NULL if value is None else value for value in values])
    return "\t".join(map(_field, values))


def _array(values: list[str]) -> str:
    """A text[] literal: every element quoted, its quotes and backslashes escaped (COPY's
    own escaping is the caller's)."""
    if not values:
        return "{}"
    if any('"' in value or "\\" in value for value in values):
        values = [value.replace("\\", "\\\\").replace('"', '\\"') for value in values]
    return '{"' + '","'.join(values) + '"}'


def _line(r: StoredRecord) -> str:
    """One record as a COPY text-format line, in COLUMNS' order."""
    at = r.at
    moment = at.time
    record_id = str(r.record_id)
    event_id = (_NULL if r.event_id is None
                else record_id if r.event_id is r.record_id else str(r.event_id))
    texts = _fields((r.event_type, r.hotel_id, r.entity_type, r.entity_id, r.source_system,
                     _array(r.targets), r.priority, r.correlation_id, r.causation_id,
                     "t" if r.created_offline else "f", r.payload, r.headers, at.topic))
    return (f"{record_id}\t{r.record_type.value}\t{event_id}\t{r.occurred_at.isoformat()}\t"
            f"{texts}\t{at.partition}\t{at.offset}\t"
            f"{_NULL if moment is None else moment.isoformat()}\n")


def copy_text(records: Sequence[StoredRecord]) -> bytes:
    """The records as COPY text-format lines, in COLUMNS' order."""
    return "".join(map(_line, records)).encode()
