"""Publisher -> topic -> agent on the real broker: equality, order, dead letters."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, EventKind, System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map
from tests.support.collector import ProcessedEvents
from tests.support.events import sample

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("kind", list(EventKind))
async def test_every_kind_round_trips_equal(
    kind: EventKind, processed: ProcessedEvents, publishers: dict[System, HotelEventPublisher],
    hub_env: HubSettings,
) -> None:
    system, document = sample(kind, unique(kind.value))
    published = await publishers[system].publish_document(document)
    assert published.topic == hub_env.topic(POLICIES[kind].topic)
    await processed.wait_for([published.event.event_id])
    assert processed.by_id[str(published.event.event_id)] == published.event


async def test_one_entitys_events_keep_their_order(
    processed: ProcessedEvents, publishers: dict[System, HotelEventPublisher]
) -> None:
    booking = unique("B")
    publisher = publishers[System.HOTEL_SAAS]
    events = [
        publisher.build(sample(EventKind.RESERVATION, booking, version=version)[1])
        for version in range(1, 41)
    ]
    results = await asyncio.gather(*(publisher.send(event) for event in events))
    assert len({(result.partition) for result in results}) == 1
    await processed.wait_for(event.event_id for event in events)
    seen = [event.data.version for event in processed.order
            if getattr(event.data, "reservation_id", None) == booking]
    assert seen == list(range(1, 41))


async def test_records_carry_cloudevents_headers(
    hub_env: HubSettings, publishers: dict[System, HotelEventPublisher]
) -> None:
    system, document = sample(EventKind.CHECKIN_CHECKOUT, unique("B"))
    published = await publishers[system].publish_document(document)
    headers = await _headers_at(hub_env, published.topic, published.partition, published.offset)
    assert headers["ce_id"] == str(published.event.event_id)
    assert headers["ce_type"] == "hotel.checkin_checkout.checked_out"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_source"] == f"/{published.event.hotel_id}/hotel-pms"
    assert headers["content-type"] == "application/avro"
    assert headers["ce_priority"] == "CRITICAL"
    assert headers["ce_time"].endswith("Z")


async def test_garbage_goes_to_the_dead_letter_topic_and_the_agent_goes_on(
    hub_env: HubSettings,
    processed: ProcessedEvents,
    publishers: dict[System, HotelEventPublisher],
) -> None:
    garbage = f"not avro {uuid.uuid4()}".encode()
    room_topic = hub_env.topic(POLICIES[EventKind.ROOM].topic)
    room_id = unique("R")
    producer = AIOKafkaProducer(bootstrap_servers=hub_env.bootstrap_servers,
                                **hub_env.kafka_auth())
    await producer.start()
    try:
        bad = await producer.send_and_wait(
            room_topic, garbage, key=f"{hub_env.default_hotel_id}:{room_id}".encode()
        )
    finally:
        await producer.stop()
    system, document = sample(EventKind.ROOM, room_id)
    after = await publishers[system].publish_document(document)
    assert after.partition == bad.partition
    await processed.wait_for([after.event.event_id])

    letter = await _find_dead_letter(hub_env, garbage)
    assert letter["hub.errors.topic"] == room_topic
    assert letter["hub.errors.partition"] == str(bad.partition)
    assert letter["hub.errors.offset"] == str(bad.offset)
    assert letter["hub.errors.exception.class"] == "CodecError"
    assert "magic byte" in letter["hub.errors.exception.message"]


async def _headers_at(settings: HubSettings, topic: str, partition: int, offset: int
                      ) -> dict[str, str]:
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        position = TopicPartition(topic, partition)
        consumer.assign([position])
        consumer.seek(position, offset)
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        return header_map(record.headers)
    finally:
        await consumer.stop()


async def _find_dead_letter(settings: HubSettings, value: bytes) -> dict[str, str]:
    consumer = AIOKafkaConsumer(
        settings.topic(DEADLETTER_TOPIC), bootstrap_servers=settings.bootstrap_servers,
                                          **settings.kafka_auth(),
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            async for record in consumer:
                if record.value == value:
                    return header_map(record.headers)
    finally:
        await consumer.stop()
    raise AssertionError("unreachable")
