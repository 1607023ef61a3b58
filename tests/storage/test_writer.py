"""The writer's COPY text against PostgreSQL: whatever the fields hold (tabs, newlines,
backslashes, quotes, NUL, NULL), what is read back is what the row said."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.storage.records import COLUMNS, Coordinates, RecordType, StoredRecord
from streams.storage.writer import EventWriter, copy_text

TRICKY = st.text(alphabet=st.sampled_from(list('ab\\\t\n\r\x00",{} é\u2028')), max_size=8)
MAYBE = st.none() | TRICKY


@st.composite
def records(draw: st.DrawFn) -> StoredRecord:
    record_id = uuid.uuid4()
    event_id = draw(st.sampled_from([None, record_id, uuid.uuid4()]))
    return StoredRecord(
        record_id=record_id, record_type=draw(st.sampled_from(list(RecordType))),
        event_id=event_id, occurred_at=datetime(2026, 11, 24, 9, 30, 1, 123000, tzinfo=UTC),
        event_type=draw(TRICKY), hotel_id=draw(MAYBE), entity_type=draw(MAYBE),
        entity_id=draw(MAYBE), source_system=draw(MAYBE),
        targets=draw(st.lists(TRICKY, max_size=3)), priority=draw(MAYBE),
        correlation_id=draw(MAYBE), causation_id=draw(MAYBE),
        created_offline=draw(st.booleans()),
        payload=json.dumps({"note": draw(TRICKY).replace("\x00", "")}),
        headers=json.dumps({"hub.key": draw(TRICKY).replace("\x00", "")}),
        at=Coordinates(draw(TRICKY).replace("\x00", "") or "hotel.room", 3,
                       draw(st.integers(0, 2**40)),
                       draw(st.sampled_from([None, -1, 1_763_900_000_123])), ()),
    )


def expected(record: StoredRecord) -> tuple[Any, ...]:
    """`row()` as PostgreSQL gives it back (jsonb parsed, text[] a list)."""
    row = list(record.row())
    row[COLUMNS.index("payload")] = json.loads(record.payload)
    row[COLUMNS.index("headers")] = json.loads(record.headers)
    return tuple(row)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(records(), min_size=1, max_size=6))
def test_what_is_copied_is_what_the_row_says(storage_dsn: str,
                                               batch: list[StoredRecord]) -> None:
    with psycopg.connect(storage_dsn, autocommit=True) as conn:
        assert EventWriter(conn).write(batch) == len(batch)
        ids = [record.record_id for record in batch]
        try:
            found = conn.execute(
                f"SELECT record_id, {', '.join(COLUMNS[1:])} FROM event_store "
                "WHERE record_id = ANY(%s)", (ids,)).fetchall()
        finally:
            conn.execute("DELETE FROM event_store WHERE record_id = ANY(%s)", (ids,))
    assert sorted(found, key=str) == sorted(map(expected, batch), key=str)


def test_an_empty_batch_is_no_text() -> None:
    assert copy_text([]) == b""
