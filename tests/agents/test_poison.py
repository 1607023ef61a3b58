"""Nothing that arrives on a topic can stop the hotel path.

Each kind of poison record goes to the dead-letter topic with its reason, the next good
record on the same partition is applied, and `/health` tells the truth. A processing
loop that dies anyway turns `/health` to 503, and a worker process exits non-zero.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, EventKind, System
from streams.core.models import HotelEvent
from streams.core.rules import RuleSettings
from streams.ops import health
from streams.runners.hotel_processor import HotelProcessor
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map
from streams.wire.registry_client import SchemaRegistryClient
from tests.agents.conftest import MAX_RECORD_BYTES
from tests.support.collector import ProcessedEvents, Refusals
from tests.support.events import sample
from tests.support.tables import HubTables
from tests.support.workers import (
    WORKER_COMMAND,
    free_port,
    isolated,
    worker_app_id,
    worker_env,
)

pytestmark = pytest.mark.integration

Publishers = dict[System, HotelEventPublisher]
Ask = Callable[[str], Awaitable[Any]]


def new_hotel() -> str:
    return f"HTL-{uuid.uuid4().hex[:6]}"


def room(hotel: str, room_id: str) -> HotelEvent:
    _, document = sample(EventKind.ROOM, room_id, room_type="DBL", status="vacant_clean",
                         maintenance_notes=None, version=1)
    document.update(action="status_changed", hotel_id=hotel)
    from streams.core.documents import build_event

    return build_event(document, publisher=System.HOTEL_PMS, default_hotel_id=hotel)


async def produce(settings: HubSettings, topic: str, value: bytes, key: bytes) -> tuple[int, int]:
    """A record from a client that is not the hub's publisher: (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, value, key=key)
        return sent.partition, sent.offset
    finally:
        await producer.stop()


async def dead_letter_of(settings: HubSettings, topic: str, partition: int, offset: int
                         ) -> dict[str, str]:
    """The dead letter naming this source record (waits for it, up to a minute)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic(DEADLETTER_TOPIC), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        async with asyncio.timeout(60):
            async for record in consumer:
                headers = header_map(record.headers)
                if (headers.get("hub.errors.topic"), headers.get("hub.errors.partition"),
                        headers.get("hub.errors.offset")) == (topic, str(partition),
                                                              str(offset)):
                    return headers
    finally:
        await consumer.stop()
    raise AssertionError("unreachable")


async def then_good_record_applies(publishers: Publishers, processed: ProcessedEvents,
                                   ask: Ask, hotel: str, room_id: str) -> None:
    """A good record of the poison's hotel (so on its partition) is applied after it."""
    event = room(hotel, room_id)
    await publishers[System.HOTEL_PMS].send(event)
    await processed.wait_for([event.event_id])
    await HubTables.mirrored()
    answer = await ask(f"/rooms/{hotel}/{room_id}")
    assert answer.status == 200 and answer.body["status"] == "vacant_clean"
    healthy = await ask("/health")
    assert healthy.status == 200, healthy.body


def framed(schema_id: int, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


async def test_bad_framing_is_a_dead_letter(
    hub_env: HubSettings, processed: ProcessedEvents, publishers: Publishers, ask: Ask
) -> None:
    hotel, room_id = new_hotel(), "R-frame"
    topic = hub_env.topic(POLICIES[EventKind.ROOM].topic)
    partition, offset = await produce(hub_env, topic, b"\x07not avro at all",
                                      f"{hotel}:{room_id}".encode())
    letter = await dead_letter_of(hub_env, topic, partition, offset)
    assert letter["hub.errors.exception.class"] == "CodecError"
    assert "magic byte 7" in letter["hub.errors.exception.message"]
    await then_good_record_applies(publishers, processed, ask, hotel, room_id)


async def test_an_unknown_schema_id_is_a_dead_letter(
    hub_env: HubSettings, processed: ProcessedEvents, publishers: Publishers, ask: Ask
) -> None:
    hotel, room_id = new_hotel(), "R-id"
    topic = hub_env.topic(POLICIES[EventKind.ROOM].topic)
    value = struct.pack(">bI", 0, 2**31 - 7) + b"\x02\x04"
    partition, offset = await produce(hub_env, topic, value, f"{hotel}:{room_id}".encode())
    letter = await dead_letter_of(hub_env, topic, partition, offset)
    assert letter["hub.errors.exception.class"] == "CodecError"
    assert f"schema id {2**31 - 7} is unknown" in letter["hub.errors.exception.message"]
    await then_good_record_applies(publishers, processed, ask, hotel, room_id)


async def test_a_schema_the_codec_cannot_read_into_its_contract_is_a_dead_letter(
    hub_env: HubSettings, processed: ProcessedEvents, publishers: Publishers,
    registry: SchemaRegistryClient, ask: Ask,
) -> None:
    hotel, room_id = new_hotel(), "R-schema"
    other = {"type": "record", "name": "Unrelated", "namespace": "elsewhere",
             "fields": [{"name": "x", "type": "int"}]}
    schema_id = await registry.register(f"poison-{uuid.uuid4().hex[:8]}-value",
                                        json.dumps(other))
    topic = hub_env.topic(POLICIES[EventKind.ROOM].topic)
    partition, offset = await produce(hub_env, topic, framed(schema_id, other, {"x": 1}),
                                      f"{hotel}:{room_id}".encode())
    letter = await dead_letter_of(hub_env, topic, partition, offset)
    assert letter["hub.errors.exception.class"] == "CodecError"
    assert f"schema id {schema_id}" in letter["hub.errors.exception.message"]
    await then_good_record_applies(publishers, processed, ask, hotel, room_id)


async def test_an_output_too_large_for_the_broker_is_a_dead_letter(
    hub_env: HubSettings, processed: ProcessedEvents, publishers: Publishers, ask: Ask
) -> None:
    hotel = new_hotel()
    house = room(hotel, "R-big")
    await publishers[System.HOTEL_PMS].send(house)
    await processed.wait_for([house.event_id])  # a booking needs its room type
    system, document = sample(EventKind.RESERVATION, "B-long", checkin_date="2027-01-01",
                              checkout_date="2027-10-28")  # 300 nights: within the limits
    document["hotel_id"] = hotel
    booking = await publishers[system].publish_document(document)
    letter = await dead_letter_of(hub_env, booking.topic, booking.partition, booking.offset)
    assert letter["hub.errors.exception.class"] == "RecordTooLarge"
    assert f"over {MAX_RECORD_BYTES} bytes" in letter["hub.errors.exception.message"]
    assert (await ask(f"/reservations/{hotel}/B-long")).status == 404
    await then_good_record_applies(publishers, processed, ask, hotel, "R-after")


async def test_a_rule_that_raises_dead_letters_only_its_record(
    hub_env: HubSettings, processed: ProcessedEvents, publishers: Publishers, ask: Ask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.runners.hotel_processor as processor

    hotel, room_id = new_hotel(), "R-bug"
    rules = processor.apply_event

    def buggy(event: HotelEvent, read: Any, settings: RuleSettings) -> Any:
        if event.hotel_id == hotel and getattr(event.data, "maintenance_notes", None) == "bug":
            raise ZeroDivisionError("a rule bug")
        return rules(event, read, settings)

    monkeypatch.setattr(processor, "apply_event", buggy)
    poison = room(hotel, room_id)
    poison = poison.model_copy(update={"data": poison.data.model_copy(
        update={"maintenance_notes": "bug"})})
    sent = await publishers[System.HOTEL_PMS].send(poison)
    letter = await dead_letter_of(hub_env, sent.topic, sent.partition, sent.offset)
    assert letter["hub.errors.exception.class"] == "ZeroDivisionError"
    assert letter["ce_id"] == str(poison.event_id)  # the original headers travel with it
    await then_good_record_applies(publishers, processed, ask, hotel, room_id)


async def test_a_dead_processing_loop_turns_health_to_503(
    hub_env: HubSettings, processed: ProcessedEvents, ask: Ask
) -> None:
    """A processor of its own (its own group), whose loop dies: `/health` says so."""
    from streams.wire.codec import ConfluentAvroCodec

    settings = hub_env.model_copy(update={"app_id": f"{hub_env.app_id}-dies"})
    async with SchemaRegistryClient(settings.registry_url) as client:
        doomed = HotelProcessor(settings, ConfluentAvroCodec(client), RuleSettings())

        async def dies(self: HotelProcessor) -> None:
            raise RuntimeError("the consumer was closed under us")

        doomed._run = dies.__get__(doomed)  # type: ignore[method-assign]
        seen: list[BaseException] = []
        died = asyncio.Event()
        doomed.on_failure(lambda error: (seen.append(error), died.set()))

        def check() -> str | None:
            return None if doomed.failure is None else f"stopped: {doomed.failure!r}"

        health.register(check)
        try:
            await doomed.start()
            await asyncio.wait_for(died.wait(), timeout=30)
            answer = await ask("/health")
            assert answer.status == 503
            assert "the consumer was closed under us" in answer.body["detail"]
            assert [str(error) for error in seen] == ["the consumer was closed under us"]
        finally:
            health._checks.remove(check)
            await doomed.stop()
    assert (await ask("/health")).status == 200


def test_a_worker_whose_loop_dies_exits_non_zero(hub_settings: HubSettings,
                                                 tmp_path: Path) -> None:
    """The `hotelhub worker` process stops with a non-zero exit, so a supervisor restarts it."""
    fault = ("from streams.runners.hotel_processor import HotelProcessor\n"
             "async def _dies(self):\n"
             "    raise RuntimeError('injected: the loop died')\n"
             "HotelProcessor._run = _dies\n")
    command = [*WORKER_COMMAND[:-1], fault + WORKER_COMMAND[-1]]
    settings = isolated(hub_settings, "dies")  # topics of its own: it decides no other hotel
    env = worker_env(settings, app_id=worker_app_id(settings, "dies"),
                     web_port=free_port(), data_dir=tmp_path)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode != 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "injected: the loop died" in done.stdout + done.stderr


async def test_a_replayed_dead_letter_heals_once_the_bug_is_fixed(
    hub_env: HubSettings, processed: ProcessedEvents, publishers: Publishers, ask: Ask,
    refusals: Refusals, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`hotelhub deadletter replay` sends the record through the rules again: fixed code
    applies it, and a second replay changes nothing."""
    import streams.runners.hotel_processor as processor
    from streams.cli.deadletter import _replay
    from streams.wire.deadletters import Selection

    hotel, token = new_hotel(), f"bug-{uuid.uuid4().hex}"
    rules = processor.apply_event

    def buggy(event: HotelEvent, read: Any, settings: RuleSettings) -> Any:
        if event.hotel_id == hotel:
            raise ZeroDivisionError(token)
        return rules(event, read, settings)

    monkeypatch.setattr(processor, "apply_event", buggy)
    victim = room(hotel, "R-heal")
    sent = await publishers[System.HOTEL_PMS].send(victim)
    await dead_letter_of(hub_env, sent.topic, sent.partition, sent.offset)
    assert (await ask(f"/rooms/{hotel}/R-heal")).status == 404

    monkeypatch.setattr(processor, "apply_event", rules)  # the fix is deployed
    first = await _replay(hub_env, Selection(reason=token), dry_run=False, stall_s=30)
    assert (first.selected, first.replayed) == (1, 1)
    await processed.wait_for([victim.event_id])
    await HubTables.mirrored()
    healed = await ask(f"/rooms/{hotel}/R-heal")
    assert healed.status == 200 and healed.body["status"] == "vacant_clean"

    again = await _replay(hub_env, Selection(reason=token), dry_run=False, stall_s=30)
    assert again.replayed == 1
    await processed.wait_for([victim.event_id], times=2)
    await HubTables.mirrored()
    assert (await ask(f"/rooms/{hotel}/R-heal")).body == healed.body
    assert str(victim.event_id) not in refusals.by_event
