"""`streams.runners.idempotent` against the real broker and registry: reports reach the sinks
decoded and in each partition's order, a bad record is dead-lettered and the rest go on,
and a restarted runner resumes after what it committed (at-least-once, nothing lost)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, EventKind, System
from streams.core.models import HotelEvent
from streams.runners.admin import ensure_topics
from streams.runners.idempotent import IdempotentRunner
from streams.runners.publisher import HotelEventPublisher, PublishedEvent
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.collector import eventually
from tests.support.events import sample
from tests.support.outside import committed_offsets
from tests.support.workers import isolated

pytestmark = pytest.mark.integration

KIND = EventKind.ANALYTICS


class Seen:
    """A sink: every event, in the order the runner handed it on."""

    def __init__(self) -> None:
        self.events: list[HotelEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: HotelEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    @property
    def ids(self) -> list[str]:
        return [str(event.event_id) for event in self.events]

    async def wait_for(self, event_ids: Iterable[object], timeout_s: float = 60) -> None:
        wanted = {str(event_id) for event_id in event_ids}
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: wanted <= set(self.ids))


@pytest.fixture
async def settings(hub_settings: HubSettings) -> HubSettings:
    own = isolated(hub_settings, "idempotent")
    own = own.model_copy(update={"app_id": f"{own.topic_prefix}hub"})
    await ensure_topics(own)
    return own


@pytest.fixture
async def registry(settings: HubSettings) -> AsyncIterator[SchemaRegistryClient]:
    async with SchemaRegistryClient(settings.registry_url) as client:
        await ConfluentAvroCodec(client).register(KIND)
        yield client


async def publish(settings: HubSettings, registry: SchemaRegistryClient, count: int,
                  tag: str) -> list[PublishedEvent]:
    async with HotelEventPublisher(system=System.HOTEL_HUB, registry=registry,
                                   settings=settings) as publisher:
        return [await publisher.publish_document(sample(KIND, f"RPT-{tag}-{index}")[1])
                for index in range(count)]


def runner_for(settings: HubSettings, registry: SchemaRegistryClient, seen: Seen
               ) -> IdempotentRunner:
    runner = IdempotentRunner(settings, ConfluentAvroCodec(registry), [KIND], name="analytics")
    runner.add_sink(seen)
    return runner


def in_partition_order(published: list[PublishedEvent], seen: Seen) -> dict[int, list[str]]:
    """Per partition, the ids the sink saw among `published`, each partition's offsets order."""
    where = {str(item.event.event_id): item.partition for item in published}
    got: dict[int, list[str]] = defaultdict(list)
    for event_id in seen.ids:
        if event_id in where:
            got[where[event_id]].append(event_id)
    return got


def expected_order(published: list[PublishedEvent]) -> dict[int, list[str]]:
    want: dict[int, list[str]] = defaultdict(list)
    for item in sorted(published, key=lambda item: (item.partition, item.offset)):
        want[item.partition].append(str(item.event.event_id))
    return want


async def test_reports_reach_the_sink_decoded_and_in_order(
    settings: HubSettings, registry: SchemaRegistryClient,
) -> None:
    published = await publish(settings, registry, 40, "order")
    assert len({item.partition for item in published}) > 1  # several partitions, each ordered
    seen = Seen()
    runner = runner_for(settings, registry, seen)
    assert runner.group_id == f"{settings.app_id}-analytics"
    await runner.start()
    try:
        await seen.wait_for(item.event.event_id for item in published)
    finally:
        await runner.stop()
    assert runner.failure is None
    by_id = {str(event.event_id): event for event in seen.events}
    assert all(by_id[str(item.event.event_id)] == item.event for item in published)
    assert in_partition_order(published, seen) == expected_order(published)
    assert len(seen.ids) == len(set(seen.ids)) == len(published)


async def test_a_bad_record_is_dead_lettered_and_the_rest_processed(
    settings: HubSettings, registry: SchemaRegistryClient,
) -> None:
    topic = settings.topic(POLICIES[KIND].topic)
    before = await publish(settings, registry, 5, "before")
    garbage = f"not avro {uuid.uuid4()}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await producer.start()
    try:
        bad = await producer.send_and_wait(topic, garbage, key=b"HTL:bad", partition=0,
                                           headers=[("ce_id", b"origin-of-the-bad-one")])
    finally:
        await producer.stop()
    after = await publish(settings, registry, 10, "after")
    seen = Seen()
    runner = runner_for(settings, registry, seen)
    await runner.start()
    try:
        await seen.wait_for(item.event.event_id for item in before + after)
        letter = await dead_letter_with(settings, garbage)
    finally:
        await runner.stop()
    assert runner.failure is None
    assert letter.key == b"HTL:bad"
    headers = header_map(letter.headers)
    assert headers["ce_id"] == "origin-of-the-bad-one"  # the original headers travel with it
    assert headers["hub.errors.topic"] == topic
    assert headers["hub.errors.partition"] == str(bad.partition)
    assert headers["hub.errors.offset"] == str(bad.offset)
    assert headers["hub.errors.exception.class"] == "CodecError"
    assert "magic byte" in headers["hub.errors.exception.message"]
    assert in_partition_order(before + after, seen) == expected_order(before + after)


async def test_a_restart_resumes_after_the_committed_position(
    settings: HubSettings, registry: SchemaRegistryClient,
) -> None:
    topic = settings.topic(POLICIES[KIND].topic)
    partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
    first = await publish(settings, registry, 20, "first")
    seen_first = Seen()
    runner = runner_for(settings, registry, seen_first)
    await runner.start()
    try:
        await seen_first.wait_for(item.event.event_id for item in first)
        ends = {TopicPartition(topic, item.partition): item.offset + 1 for item in first}

        async def committed_all() -> bool:
            found = await committed_offsets(settings, runner.group_id, partitions)
            return all(found[tp] >= end for tp, end in ends.items())

        await eventually(committed_all, timeout_s=30, interval_s=0.2)
    finally:
        await runner.stop()

    second = await publish(settings, registry, 20, "second")  # while no runner reads
    seen_second = Seen()
    again = runner_for(settings, registry, seen_second)
    await again.start()
    try:
        await seen_second.wait_for(item.event.event_id for item in second)
        await asyncio.sleep(1.0)  # anything read again would arrive with them
    finally:
        await again.stop()
    assert not {str(item.event.event_id) for item in first} & set(seen_second.ids)
    assert in_partition_order(second, seen_second) == expected_order(second)
    assert sorted(seen_second.ids) == sorted(str(item.event.event_id) for item in second)


async def dead_letter_with(settings: HubSettings, value: bytes) -> Any:
    consumer = AIOKafkaConsumer(settings.topic(DEADLETTER_TOPIC),
                                bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            async for record in consumer:
                if record.value == value:
                    return record
    finally:
        await consumer.stop()
    raise AssertionError("unreachable")
