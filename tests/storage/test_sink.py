"""The sink against the real broker and a real PostgreSQL: every record once, whatever is
replayed or redelivered."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.core.documents import build_event
from streams.core.kinds import POLICIES, EventKind, System
from streams.core.models import HotelEvent
from streams.runners.admin import ensure_topics
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.storage.sink import EventSink
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.collector import eventually
from tests.support.events import sample, status_change

ROOM_TOPIC = POLICIES[EventKind.ROOM].topic


def built(system: System, document: dict[str, Any], hotel: str) -> HotelEvent:
    return build_event({**document, "hotel_id": hotel, "event_id": str(uuid.uuid4())},
                       publisher=system, default_hotel_id=hotel)


async def publish(settings: HubSettings, events: list[HotelEvent]) -> None:
    by_system: dict[str, list[HotelEvent]] = {}
    for event in events:
        by_system.setdefault(event.updated_by_system, []).append(event)
    for system, batch in by_system.items():
        as_system = settings.as_identity(system)
        async with (SchemaRegistryClient.from_settings(as_system) as registry,
                    HotelEventPublisher(system=System(system), registry=registry,
                                        settings=as_system) as publisher):
            await publisher.publish_many(batch)


async def stored(conn: psycopg.AsyncConnection, hotel: str) -> dict[str, int]:
    """The hotel's events stored, and how often each. Only events: a worker of another test
    on the session's topics may refuse them, and the group sink stores those refusals too."""
    cursor = await conn.execute(
        "SELECT record_id::text, count(*) FROM event_store WHERE hotel_id = %s "
        "AND record_type = 'event' GROUP BY record_id", (hotel,))
    return {str(rid): int(n) for rid, n in await cursor.fetchall()}


@pytest.fixture(scope="module", autouse=True)
async def _topics(hub_settings: HubSettings) -> None:
    await ensure_topics(hub_settings)


@pytest.fixture
def hotel() -> str:
    return f"HTL-ST-{uuid.uuid4().hex[:6].upper()}"


async def test_replaying_a_topic_twice_stores_each_event_once(
        hub_settings: HubSettings, storage_dsn: str, conn: psycopg.AsyncConnection,
        hotel: str) -> None:
    events = [built(System.HOTEL_PMS, status_change(i, rooms=40, prefix=hotel), hotel)
              for i in range(600)]
    # The same event published twice (a publisher's retry after a lost ack): two offsets.
    await publish(hub_settings, [*events, events[0]])
    settings = hub_settings.as_identity("hotel-hub")

    first = await EventSink(settings, dsn=storage_dsn, topics=[ROOM_TOPIC], replay=True).run()
    second = await EventSink(settings, dsn=storage_dsn, topics=[ROOM_TOPIC], replay=True).run()

    rows = await stored(conn, hotel)
    assert rows == {str(event.event_id): 1 for event in events}
    assert first.read >= 601 and second.read == first.read
    assert second.inserted == 0


async def test_the_group_sink_resumes_where_it_committed(
        hub_settings: HubSettings, storage_dsn: str, conn: psycopg.AsyncConnection,
        hotel: str) -> None:
    settings = hub_settings.as_identity("hotel-hub").model_copy(
        update={"app_id": f"{hub_settings.topic_prefix}sink-{uuid.uuid4().hex[:6]}"})
    kinds = [built(*sample(kind, f"{hotel}-E{kind.value}"), hotel) for kind in EventKind]
    await publish(hub_settings, kinds)

    async def until_stored(count: int) -> None:
        sink = EventSink(settings, dsn=storage_dsn)
        task = asyncio.create_task(sink.run())
        async def enough() -> bool:
            return len(await stored(conn, hotel)) >= count

        try:
            await eventually(enough, timeout_s=60, interval_s=0.2)
        finally:
            sink.stop()
            await task

    await until_stored(len(kinds))
    more = [built(System.HOTEL_PMS, status_change(i, rooms=5, prefix=hotel), hotel)
            for i in range(50)]
    await publish(hub_settings, more)
    await until_stored(len(kinds) + len(more))
    rows = await stored(conn, hotel)
    assert set(rows) == {str(e.event_id) for e in [*kinds, *more]}
    assert set(rows.values()) == {1}
    cursor = await conn.execute(
        "SELECT entity_type, event_type FROM event_store WHERE hotel_id = %s "
        "AND record_type = 'event' ORDER BY entity_type", (hotel,))
    kinds_stored = {row[0] for row in await cursor.fetchall()}
    assert kinds_stored == {kind.value for kind in EventKind}



class Moved:
    """A consumer whose group moved a partition away while a batch was being written."""

    def __init__(self, assigned: set[TopicPartition], error: Exception | None = None) -> None:
        self.assigned, self.error = assigned, error
        self.committed: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.error is not None:
            raise self.error
        self.committed.append(offsets)


async def test_a_sink_commits_only_the_partitions_it_still_has() -> None:
    kept, moved = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer = Moved({kept})
    await EventSink._commit(consumer, {kept: 10, moved: 20})
    assert consumer.committed == [{kept: 10}]
    gone = Moved(set())
    await EventSink._commit(gone, {moved: 20})
    assert gone.committed == []


@pytest.mark.parametrize("error", [CommitFailedError("rebalanced"),
                                   IllegalStateError("not assigned")])
async def test_a_rebalance_during_a_commit_does_not_stop_the_sink(error: Exception) -> None:
    tp = TopicPartition("t", 0)
    await EventSink._commit(Moved({tp}, error), {tp: 5})
