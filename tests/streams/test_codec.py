"""Confluent framing round-trips every kind and rejects what is not ours."""

from __future__ import annotations

import io
import struct

import pytest

from streams.core.documents import build_event
from streams.core.exceptions import CodecError, RegistryError, RegistryUnavailable
from streams.core.kinds import EventKind
from streams.core.models import ReservationEvent
from streams.wire.codec import ConfluentAvroCodec
from tests.support.events import sample


class SchemasById:
    """The two registry calls the codec makes, kept in a dict for unit tests."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}

    async def register(self, subject: str, schema_text: str) -> int:
        for schema_id, text in self.texts.items():
            if text == schema_text:
                return schema_id
        self.texts[len(self.texts) + 1] = schema_text
        return len(self.texts)

    async def schema_by_id(self, schema_id: int) -> str:
        if schema_id not in self.texts:  # as the registry client reports a 404
            raise RegistryError(f"Schema {schema_id} not found", status=404, error_code=40403)
        return self.texts[schema_id]


@pytest.fixture
async def codec() -> ConfluentAvroCodec:
    codec = ConfluentAvroCodec(SchemasById())
    await codec.register()
    return codec


@pytest.mark.parametrize("kind", list(EventKind))
async def test_every_kind_round_trips_equal(codec: ConfluentAvroCodec, kind: EventKind) -> None:
    system, document = sample(kind)
    event = build_event(document, publisher=system, default_hotel_id="HTL-1")
    payload = codec.encode(event)
    assert payload[0] == 0
    assert struct.unpack(">I", payload[1:5])[0] == codec.schema_id(kind)
    assert await codec.decode(kind, payload) == event


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"", "shorter than the Confluent header"), (b"garbage-bytes", "magic byte"),
     (b"\x00\x00\x00\x00\x01\xff\xff\xff", "not valid Avro")],
)
async def test_bad_bytes_raise_a_codec_error(
    codec: ConfluentAvroCodec, payload: bytes, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        await codec.decode(EventKind.ROOM, payload)


async def test_unknown_schema_id_is_a_codec_error(codec: ConfluentAvroCodec) -> None:
    with pytest.raises(CodecError, match="schema id 999"):
        await codec.decode(EventKind.ROOM, b"\x00" + struct.pack(">I", 999) + b"\x00")


def reservation_and_broken() -> tuple[ReservationEvent, ReservationEvent]:
    """A reservation, and a copy checking out the day it checks in (its contract refuses it)."""
    system, document = sample(EventKind.RESERVATION)
    event = build_event(document, publisher=system, default_hotel_id="HTL-1")
    assert isinstance(event, ReservationEvent)
    return event, event.model_copy(update={"data": event.data.model_copy(
        update={"checkout_date": event.data.checkin_date})})


async def test_record_that_violates_the_model_is_a_codec_error(codec: ConfluentAvroCodec) -> None:
    _, broken = reservation_and_broken()
    with pytest.raises(CodecError, match="violates its contract"):
        await codec.decode(EventKind.RESERVATION, codec.encode(broken))


class RegistryAway(SchemasById):
    async def schema_by_id(self, schema_id: int) -> str:
        raise RegistryError("cannot reach http://***@127.0.0.1:8081", status=None)


async def test_a_registry_that_does_not_answer_is_not_a_bad_record() -> None:
    """Records wait for the registry (the worker pauses); they are never dead-lettered."""
    writer = ConfluentAvroCodec(SchemasById())
    await writer.register()
    system, document = sample(EventKind.RESERVATION)
    value = writer.encode(build_event(document, publisher=system, default_hotel_id="HTL-1"))
    reader = ConfluentAvroCodec(RegistryAway())
    with pytest.raises(RegistryUnavailable, match="did not give schema id"):
        await reader.decode(EventKind.RESERVATION, value)


async def test_decode_known_needs_no_registry_once_the_schema_id_was_seen() -> None:
    """A consumer's steady state: the first record of a schema id asks the registry (through
    `decode`), later ones decode without a coroutine and without asking again."""
    registry = SchemasById()
    writer = ConfluentAvroCodec(registry)
    await writer.register()
    system, document = sample(EventKind.ANALYTICS)
    event = build_event(document, publisher=system, default_hotel_id="HTL-1")
    value = writer.encode(event)
    reader = ConfluentAvroCodec(registry)
    assert reader.decode_known(EventKind.ANALYTICS, value) is None
    assert await reader.decode(EventKind.ANALYTICS, value) == event
    asked: list[int] = []

    async def counted(schema_id: int) -> str:
        asked.append(schema_id)
        return registry.texts[schema_id]

    registry.schema_by_id = counted  # type: ignore[method-assign]
    assert reader.decode_known(EventKind.ANALYTICS, value) == event
    assert await reader.decode(EventKind.ANALYTICS, value) == event
    assert asked == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"", "shorter than the Confluent header"), (b"garbage-bytes", "magic byte")],
)
def test_decode_known_refuses_what_is_not_ours(
    codec: ConfluentAvroCodec, payload: bytes, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        codec.decode_known(EventKind.ROOM, payload)


async def test_decode_known_raises_a_codec_error_for_a_record_of_a_known_schema(
    codec: ConfluentAvroCodec,
) -> None:
    event, broken = reservation_and_broken()
    with pytest.raises(CodecError, match="violates its contract"):
        codec.decode_known(EventKind.RESERVATION, codec.encode(broken))
    corrupt = codec.encode(event)[:6]
    with pytest.raises(CodecError, match="not valid Avro"):
        codec.decode_known(EventKind.RESERVATION, corrupt)


async def test_an_evolved_writer_schema_is_resolved_into_the_contract() -> None:
    """A writer schema that is not our contract (an extra optional field) is still resolved
    into it, by `decode` and by `decode_known` (the resolution is kept per schema id)."""
    import json

    import fastavro

    from schemas import schema_text
    from streams.wire.codec import parse_schema

    registry = SchemasById()
    reader = ConfluentAvroCodec(registry)
    await reader.register()
    evolved = json.loads(schema_text("room"))
    evolved["fields"].append({"name": "extra_note", "type": ["null", "string"],
                              "default": None})
    evolved_text = json.dumps(evolved)
    evolved_id = await registry.register("room-evolved", evolved_text)
    system, document = sample(EventKind.ROOM)
    event = build_event(document, publisher=system, default_hotel_id="HTL-1")
    buffer = io.BytesIO()
    buffer.write(struct.pack(">bI", 0, evolved_id))
    fastavro.schemaless_writer(buffer, parse_schema(evolved_text),
                               {**event.model_dump(mode="python"), "extra_note": "hi"})
    value = buffer.getvalue()
    assert reader.decode_known(EventKind.ROOM, value) is None
    assert await reader.decode(EventKind.ROOM, value) == event
    assert reader.decode_known(EventKind.ROOM, value) == event
