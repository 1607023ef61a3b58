"""Rows for the Event Storage's tests, written straight through the sink's writer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from streams.core.kinds import EventKind
from streams.storage.records import Coordinates, StoredRecord, event_row, refusal_row
from streams.storage.writer import EventWriter

T0 = datetime(2026, 11, 24, 6, tzinfo=UTC)


def stored_event(kind: EventKind, action: str, hotel: str, entity: str, *,
                 minute: int = 0, source: str = "hotel-pms", targets: tuple[str, ...] = (),
                 offset: int = 0, **envelope: Any) -> StoredRecord:
    """A hotel event's row, as the sink would make it of a record at `offset`."""
    key = {"reservation": "reservation_id", "checkin_checkout": "reservation_id",
           "room": "room_id", "customer": "customer_id", "analytics": "report_id"}[kind.value]
    record = {"event_id": str(envelope.pop("event_id", uuid.uuid4())), "type": kind.value,
              "action": action, "priority": "HIGH", "targets": list(targets),
              "hotel_id": hotel, "origin_system": source, "updated_by_system": source,
              "occurred_at": T0 + timedelta(minutes=minute), "created_offline": False,
              "correlation_id": None, "causation_id": None, "data": {key: entity},
              **envelope}
    return event_row(kind, record, Coordinates(f"hotel.{kind.value}", 0, offset, None))


def stored_refusal(refused: StoredRecord, reason: str, *, minute: int) -> StoredRecord:
    return refusal_row({
        "refusal_id": str(uuid.uuid4()), "refused_event_id": str(refused.event_id),
        "event_type": refused.event_type, "hotel_id": refused.hotel_id,
        "entity_id": refused.entity_id, "origin_system": refused.source_system,
        "updated_by_system": refused.source_system, "reason_code": reason,
        "reason": f"refused: {reason}", "current_state": None, "created_offline": False,
        "refused_at": T0 + timedelta(minutes=minute),
    }, Coordinates("hotel.refusals", 0, minute, None))


async def store(dsn: str, rows: list[StoredRecord]) -> int:
    def write() -> int:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return EventWriter(conn).write(rows)

    return await asyncio.to_thread(write)
