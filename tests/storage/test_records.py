"""From Kafka record to Event Storage row: ids that survive replays, JSON PostgreSQL takes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from streams.core.kinds import EventKind
from streams.storage.records import (
    Coordinates,
    RecordType,
    dead_letter_row,
    event_row,
    refusal_row,
    to_json,
    undecodable_row,
    webhook_dead_letter_row,
)
from streams.wire.deadletters import deadletter_headers

AT = Coordinates("hotel.room", 2, 41, 1_763_900_000_000, (("ce_id", b"x"),))


def test_an_event_is_kept_under_its_own_id_with_its_envelope() -> None:
    event_id = uuid.uuid4()
    record = {
        "event_id": str(event_id), "type": "room", "action": "status_changed",
        "priority": "HIGH", "targets": ["hotel-saas"], "hotel_id": "H1",
        "origin_system": "hotel-pms", "updated_by_system": "hotel-pms",
        "occurred_at": datetime(2026, 11, 24, 9, tzinfo=UTC), "correlation_id": "R1",
        "causation_id": None, "created_offline": True,
        "data": {"room_id": "H1-R201", "base_price": Decimal("15800.500")},
    }
    row = event_row(EventKind.ROOM, record, AT)
    assert (row.record_id, row.event_id) == (event_id, event_id)
    assert row.event_type == "hotel.room.status_changed"
    assert (row.entity_type, row.entity_id, row.source_system) == ("room", "H1-R201", "hotel-pms")
    assert row.created_offline and row.correlation_id == "R1"
    payload = json.loads(row.payload)
    assert payload["data"]["base_price"] == "15800.500"  # money stays a decimal, as text
    assert payload["occurred_at"] == "2026-11-24T09:00:00+00:00"


def test_records_without_ids_get_the_same_id_on_every_read() -> None:
    again = Coordinates("hotel.room", 2, 41, 0)
    elsewhere = Coordinates("hotel.room", 2, 42, 0)
    first = undecodable_row(b"\x00junk", AT, "bad")
    assert first.record_id == undecodable_row(b"\x00junk", again, "bad").record_id
    assert first.record_id != undecodable_row(b"\x00junk", elsewhere, "bad").record_id
    assert first.record_type is RecordType.UNDECODABLE
    assert json.loads(first.payload)["error"] == "bad"


def test_a_refusal_is_about_the_refused_event_and_told_to_its_targets() -> None:
    refused = uuid.uuid4()
    at = Coordinates("hotel.refusals", 0, 7, 0,
                     (("ce_targets", b"hotel-pms,hotel-saas"),))
    row = refusal_row({
        "refusal_id": str(uuid.uuid4()), "refused_event_id": str(refused),
        "event_type": "hotel.reservation.created", "hotel_id": "H1", "entity_id": "R1",
        "origin_system": "hotel-pms", "updated_by_system": "hotel-pms",
        "reason_code": "overbooked", "reason": "no room", "current_state": None,
        "created_offline": True, "refused_at": datetime(2026, 11, 24, tzinfo=UTC),
    }, at)
    assert row.event_id == refused and row.causation_id == str(refused)
    assert (row.entity_type, row.event_type) == ("reservation", "hotel.refusal.overbooked")
    assert row.targets == ["hotel-pms", "hotel-saas"]


def test_a_dead_letter_keeps_its_bytes_and_why() -> None:
    headers = [("ce_id", str(uuid.uuid4()).encode()), ("ce_source", b"/H1/hotel-pms"),
               *deadletter_headers(topic="hotel.room", partition=1, offset=9,
                                   error=ValueError("not Avro"))]
    row = dead_letter_row(b"H1:R1", b"\x01\x02", Coordinates("hotel.deadletter", 0, 3, 0,
                                                             headers))
    payload = json.loads(row.payload)
    assert payload["reason"] == "ValueError: not Avro"
    assert (payload["source_topic"], payload["source_offset"]) == ("hotel.room", 9)
    assert payload["value"] == "AQI="
    assert row.source_system == "hotel-pms"


def test_a_webhook_dead_letter_that_is_not_json_is_kept_as_undecodable() -> None:
    row = webhook_dead_letter_row(b"{not json", AT)
    assert row.record_type is RecordType.UNDECODABLE
    assert "not JSON" in json.loads(row.payload)["error"]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=20))
def test_json_for_postgresql_never_holds_a_nul(value: object) -> None:
    decoded = json.loads(to_json(value))
    assert "\x00" not in _strings(decoded)
    if "\x00" not in _strings(value):
        assert decoded == value


def _strings(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "".join(_strings(k) + _strings(v) for k, v in value.items())
    if isinstance(value, list):
        return "".join(_strings(item) for item in value)
    return ""


def test_a_nul_becomes_the_replacement_character_and_escaped_text_stays() -> None:
    assert json.loads(to_json({"a\x00": "b\x00", "c": "\\u0000"})) == {
        "a\ufffd": "b\ufffd", "c": "\\u0000"}
