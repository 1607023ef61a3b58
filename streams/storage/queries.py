"""What a support engineer asks the Event Storage: records by entity, kind and time, paged,
and the chain of one booking.

Pages are keyset pages on (occurred_at, record_id), the order of the table's primary key:
a page costs the same at the millionth row as at the first, and rows stored while someone
pages never shift what they see. The cursor is opaque to callers.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from streams.core.exceptions import HubError
from streams.core.kinds import TYPE_PREFIX

MAX_PAGE = 1000
CHAIN_DEPTH = 8
"""Hops followed from the first records of a chain (booking -> check-in -> room -> ...)."""
CHAIN_LIMIT = 10_000

FIELDS = (
    "record_id, record_type, event_id, occurred_at, event_type, hotel_id, entity_type, "
    "entity_id, source_system, targets, priority, correlation_id, causation_id, "
    "created_offline, payload, kafka_topic, kafka_partition, kafka_offset, stored_at"
)


class QueryError(HubError):
    """A filter or cursor that cannot be used: names which and why."""


@dataclass(frozen=True)
class EventFilter:
    hotel_id: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    kind: str | None = None
    """`reservation`, `reservation.created`, `refusal` or a full `hotel.room.status_changed`."""
    record_type: str | None = None
    since: datetime | None = None
    """Inclusive."""
    until: datetime | None = None
    """Exclusive."""
    visible_to: str | None = None
    """A system: only records it sent or was sent (None: everything)."""
    hotel_ids: tuple[str, ...] | None = None
    """Only these hotels (an identity's), None: every hotel."""

    def __post_init__(self) -> None:
        for name in ("hotel_id", "entity_type", "entity_id", "kind", "record_type",
                     "visible_to"):
            _no_nul(name, getattr(self, name))
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise QueryError(f"{name} needs a time zone (e.g. 2026-11-24T09:00+09:00)")
        if self.since and self.until and self.since >= self.until:
            raise QueryError(f"since ({self.since.isoformat()}) is not before until "
                             f"({self.until.isoformat()})")
        if self.entity_id is not None and self.entity_type is None:
            raise QueryError("entity_id needs entity_type (e.g. reservation, room, customer)")

    def where(self) -> tuple[sql.Composable, list[Any]]:
        parts: list[sql.Composable] = []
        values: list[Any] = []

        def add(clause: str, *args: Any) -> None:
            parts.append(sql.SQL(clause))
            values.extend(args)

        if self.hotel_id is not None:
            add("hotel_id = %s", self.hotel_id)
        if self.entity_type is not None:
            add("entity_type = %s", self.entity_type)
        if self.entity_id is not None:
            add("entity_id = %s", self.entity_id)
        if self.kind is not None:
            exact, pattern = kind_pattern(self.kind)
            if exact:
                add("event_type = %s", pattern)
            else:
                add("event_type LIKE %s", pattern)
        if self.record_type is not None:
            add("record_type = %s", self.record_type)
        if self.since is not None:
            add("occurred_at >= %s", self.since)
        if self.until is not None:
            add("occurred_at < %s", self.until)
        if self.visible_to is not None:
            add("(source_system = %s OR %s = ANY(targets))", self.visible_to, self.visible_to)
        if self.hotel_ids is not None:
            add("hotel_id = ANY(%s)", list(self.hotel_ids))
        clause = sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")
        return clause, values


def _no_nul(name: str, value: str | None) -> None:
    """PostgreSQL's text cannot hold NUL, so no stored value has one: say so, not a 500."""
    if value is not None and "\x00" in value:
        raise QueryError(f"{name} contains a NUL character, which no stored record has")


def kind_pattern(kind: str) -> tuple[bool, str]:
    """(exact, pattern) for the `event_type` column."""
    text = kind.strip().removeprefix(f"{TYPE_PREFIX}.")
    if not text or not all(ch.isalnum() or ch in "._-" for ch in text):
        raise QueryError(f"kind {kind!r} is not an event type such as reservation or "
                         "reservation.created")
    full = f"{TYPE_PREFIX}.{text}"
    if "." in text:
        return True, full
    return False, full.replace("_", "\\_") + ".%"


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next: str | None
    """Cursor of the next page; None on the last."""


def encode_cursor(occurred_at: datetime, record_id: UUID) -> str:
    raw = f"{occurred_at.isoformat()}|{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, record_id = raw.partition("|")
        return datetime.fromisoformat(moment), UUID(record_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError(f"cursor {cursor!r} is not one this storage handed out") from None


async def find(conn: psycopg.AsyncConnection, where: EventFilter, *, limit: int = 100,
               after: str | None = None) -> Page:
    """One page of records matching `where`, oldest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    clause, values = where.where()
    if after is not None:
        moment, record_id = decode_cursor(after)
        clause = sql.SQL("{} AND (occurred_at, record_id) > (%s, %s)").format(clause)
        values += [moment, record_id]
    query = sql.SQL("SELECT {} FROM event_store WHERE {} "
                    "ORDER BY occurred_at, record_id LIMIT %s").format(
        sql.SQL(FIELDS), clause)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, [*values, limit + 1])
        rows = await cursor.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor_next = encode_cursor(rows[-1]["occurred_at"], rows[-1]["record_id"]) if more else None
    return Page([shown(row) for row in rows], cursor_next)


async def chain(conn: psycopg.AsyncConnection, key: str, *, visible_to: str | None = None
                ) -> list[dict[str, Any]]:
    """Everything that follows from one booking or event, in time order.

    Starts from the records whose correlation id is `key`, the event with id `key` (and
    what is about it), and a reservation's own records when `key` is its id (its booking
    and check-in/out events are keyed by it); then follows, up to CHAIN_DEPTH hops, what
    was caused by a record (`causation_id`: the hub's derived room events, refusals,
    deliveries) and the records about an event (`event_id`: its refusal, its deliveries,
    its dead letters). Every step is an index lookup.
    """
    _no_nul("key", key)
    query = sql.SQL("""
        WITH RECURSIVE linked(record_id, occurred_at, depth) AS (
            SELECT record_id, occurred_at, 0 FROM event_store
             WHERE correlation_id = %(key)s
                OR event_id = %(id)s
                OR (entity_id = %(key)s AND entity_type IN ('reservation', 'checkin_checkout'))
            UNION
            SELECT e.record_id, e.occurred_at, l.depth + 1
              FROM linked l JOIN event_store e
                ON e.causation_id = l.record_id::text OR e.event_id = l.record_id
             WHERE l.depth < %(depth)s
        )
        SELECT {} FROM event_store
         WHERE (occurred_at, record_id) IN (SELECT occurred_at, record_id FROM linked) {}
         ORDER BY occurred_at, record_id
         LIMIT %(limit)s
    """).format(sql.SQL(FIELDS), sql.SQL(
        "AND (source_system = %(system)s OR %(system)s = ANY(targets))" if visible_to else ""))
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, {"key": key, "id": _uuid_or_none(key),
                                     "depth": CHAIN_DEPTH, "limit": CHAIN_LIMIT,
                                     "system": visible_to})
        return [shown(row) for row in await cursor.fetchall()]


async def counts(conn: psycopg.AsyncConnection, where: EventFilter) -> dict[str, int]:
    """How many records of each record type match `where` (for summaries and boards)."""
    clause, values = where.where()
    query = sql.SQL("SELECT record_type, count(*) FROM event_store WHERE {} "
                    "GROUP BY record_type").format(clause)
    cursor = await conn.execute(query, values)
    return {str(kind): int(n) for kind, n in await cursor.fetchall()}


def shown(row: dict[str, Any]) -> dict[str, Any]:
    """A stored record as JSON-ready fields: ids and times as text, Kafka coordinates apart."""
    return {
        "record_id": str(row["record_id"]),
        "record_type": row["record_type"],
        "event_id": str(row["event_id"]) if row["event_id"] else None,
        "occurred_at": row["occurred_at"].isoformat(),
        "event_type": row["event_type"],
        "hotel_id": row["hotel_id"],
        "entity_type": row["entity_type"],
        "entity_id": row["entity_id"],
        "source_system": row["source_system"],
        "targets": list(row["targets"] or ()),
        "priority": row["priority"],
        "correlation_id": row["correlation_id"],
        "causation_id": row["causation_id"],
        "created_offline": row["created_offline"],
        "payload": row["payload"],
        "kafka": {"topic": row["kafka_topic"], "partition": row["kafka_partition"],
                  "offset": row["kafka_offset"]},
        "stored_at": row["stored_at"].isoformat(),
    }


def _uuid_or_none(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None

