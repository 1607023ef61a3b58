"""The sink's lean Avro reads (`streams.wire.codec.LeanSchema`) give the very records the
codec gives otherwise: same values of the same types, so the same stored payloads."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest

from schemas import schema_text
from streams.core.documents import build_event
from streams.core.exceptions import CodecError
from streams.core.kinds import DELIVERY_LOG_CONTRACT, EventKind
from streams.core.models import DeliveryLog, Refusal
from streams.storage.records import to_json
from streams.wire.codec import ConfluentAvroCodec, lean_schema, parse_schema
from tests.support.events import sample


class Registry:
    """The two calls the codec makes, in a dict."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}

    async def register(self, subject: str, text: str) -> int:
        found = [schema_id for schema_id, known in self.texts.items() if known == text]
        if found:
            return found[0]
        self.texts[len(self.texts) + 1] = text
        return len(self.texts)

    async def schema_by_id(self, schema_id: int) -> str:
        return self.texts[schema_id]


@pytest.fixture
async def codecs() -> tuple[ConfluentAvroCodec, ConfluentAvroCodec]:
    registry = Registry()
    plain, lean = ConfluentAvroCodec(registry), ConfluentAvroCodec(registry, lean=True)
    await plain.register()
    await lean.register()
    return plain, lean


def typed(value: Any) -> Any:
    """The value with every leaf's type beside it (1 == 1.0 == True would hide a change)."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, datetime):
        return type(value), value, value.tzinfo
    return type(value), value


async def assert_same(codecs: tuple[ConfluentAvroCodec, ConfluentAvroCodec], contract: str,
                      payload: bytes) -> dict[str, Any]:
    plain, lean = codecs
    expected = await plain.decode_record(contract, payload)
    got = await lean.decode_record(contract, payload)
    assert typed(got) == typed(expected)
    assert to_json(got) == to_json(expected)
    assert typed(lean.decode_known_record(contract, payload)) == typed(expected)
    return got


def framed(codec: ConfluentAvroCodec, contract: str, record: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parse_schema(schema_text(contract)), record)
    return b"\x00" + codec.schema_id(contract).to_bytes(4, "big") + body.getvalue()


@pytest.mark.parametrize("kind", list(EventKind))
async def test_every_kind_decodes_the_same(
        codecs: tuple[ConfluentAvroCodec, ConfluentAvroCodec], kind: EventKind) -> None:
    system, document = sample(kind)
    event = build_event(document, publisher=system, default_hotel_id="H1")
    record = await assert_same(codecs, kind.value, codecs[0].encode(event))
    assert isinstance(record["event_id"], uuid.UUID)
    assert isinstance(record["occurred_at"], datetime)


async def test_refusals_and_deliveries_decode_the_same(
        codecs: tuple[ConfluentAvroCodec, ConfluentAvroCodec]) -> None:
    system, document = sample(EventKind.ROOM)
    event = build_event(document, publisher=system, default_hotel_id="H1")
    refusal = codecs[0].encode(Refusal(
        refusal_id=uuid.uuid4(), refused_event_id=event.event_id, event_type="hotel.room.x",
        hotel_id="H1", entity_id="RM-1", origin_system="hotel-pms",
        updated_by_system="hotel-pms", reason_code="stale_version",
        reason="older than stored", refused_at=datetime.now(UTC)))
    delivery = codecs[0].encode(DeliveryLog(
        event_id=event.event_id, event_type="hotel.room.x", source_system="hotel-pms",
        target_systems=["hotel-saas"], delivery_status="retrying", delivery_time=12,
        retry_count=1, timestamp=datetime.now(UTC), channel="webhook",
        target_system="hotel-saas", hotel_id="H1",
        next_attempt_at=datetime.now(UTC) + timedelta(seconds=30)))
    assert isinstance((await assert_same(codecs, "refusal", refusal))["refused_at"], datetime)
    logged = await assert_same(codecs, DELIVERY_LOG_CONTRACT, delivery)
    assert isinstance(logged["next_attempt_at"], datetime)


@pytest.mark.parametrize("millis", [0, 1, -1, -86_400_001, 1_763_900_000_123,
                                    253_402_300_799_999, -62_135_596_800_000])
async def test_any_timestamp_decodes_the_same(
        codecs: tuple[ConfluentAvroCodec, ConfluentAvroCodec], millis: int) -> None:
    system, document = sample(EventKind.ROOM)
    record = await codecs[0].decode_record(
        "room", codecs[0].encode(build_event(document, publisher=system, default_hotel_id="H")))
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    got = await assert_same(codecs, "room", framed(codecs[0], "room", {
        **record, "occurred_at": when, "synced_at": None}))
    assert got["occurred_at"] == when and got["synced_at"] is None


async def test_a_bad_uuid_is_the_same_codec_error(
        codecs: tuple[ConfluentAvroCodec, ConfluentAvroCodec]) -> None:
    system, document = sample(EventKind.ROOM)
    record = await codecs[0].decode_record(
        "room", codecs[0].encode(build_event(document, publisher=system, default_hotel_id="H")))
    payload = framed(codecs[0], "room", {**record, "event_id": "not-a-uuid"})
    errors = []
    for codec in codecs:
        with pytest.raises(CodecError) as caught:
            await codec.decode_record("room", payload)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_a_record_referred_to_by_name_is_read_as_fastavro_reads_it() -> None:
    stamp = {"type": "long", "logicalType": "timestamp-millis"}
    inner = {"type": "record", "name": "Stamp", "fields": [{"name": "at", "type": stamp}]}
    twice = parse_schema('{"type": "record", "name": "Twice", "fields": ['
                         f'{{"name": "first", "type": {_json(inner)}}},'
                         '{"name": "again", "type": {"type": "array", "items": "Stamp"}}]}')
    once = parse_schema(f'{{"type": "record", "name": "Once", "fields": [{{"name": "first", '
                        f'"type": {_json(inner)}}}]}}')
    assert lean_schema(twice) is None
    lean = lean_schema(once)
    assert lean is not None and lean.conversions[0][0] == ("first",)


def _json(value: Any) -> str:
    return json.dumps(value)
