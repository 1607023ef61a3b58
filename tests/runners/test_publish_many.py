"""`HotelEventPublisher.publish_many`: a batch validated, encoded and sent together, against
the real broker. A bad event is reported with its index and field; the others are sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.documents import build_event
from streams.core.exceptions import EventValidationError, PublishError, PublishForbidden
from streams.core.kinds import EventKind, System
from streams.runners.admin import ensure_topics
from streams.runners.publisher import HotelEventPublisher, PublishedEvent
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import sample
from tests.support.workers import isolated

pytestmark = pytest.mark.integration


def booking(entity: str, **data: Any) -> dict[str, Any]:
    return sample(EventKind.RESERVATION, entity, **data)[1]


@pytest.fixture
async def registry(hub_settings: HubSettings) -> AsyncIterator[SchemaRegistryClient]:
    await ensure_topics(hub_settings)
    async with SchemaRegistryClient(hub_settings.registry_url) as client:
        yield client


@pytest.fixture
async def publisher(hub_settings: HubSettings, registry: SchemaRegistryClient
                    ) -> AsyncIterator[HotelEventPublisher]:
    async with HotelEventPublisher(system=System.HOTEL_SAAS, registry=registry,
                                   settings=hub_settings) as pub:
        yield pub


async def read_back(settings: HubSettings, published: PublishedEvent) -> Any:
    """The record at the published offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        where = TopicPartition(published.topic, published.partition)
        consumer.assign([where])
        consumer.seek(where, published.offset)
        async with asyncio.timeout(10):
            while True:
                batch = await consumer.getmany(where, timeout_ms=1000)
                for record in batch.get(where, []):
                    if record.offset == published.offset:
                        return record
    finally:
        await consumer.stop()


async def test_good_events_are_sent_and_bad_ones_named_by_index_and_field(
    publisher: HotelEventPublisher, registry: SchemaRegistryClient, hub_settings: HubSettings,
) -> None:
    tag = uuid.uuid4().hex[:8]
    wrong_amount = booking(f"B-{tag}-1", total_amount="abc")
    no_room_type = booking(f"B-{tag}-3")
    del no_room_type["data"]["room_type"]
    batch = [
        booking(f"B-{tag}-0"),
        wrong_amount,
        booking(f"B-{tag}-2"),
        no_room_type,
        sample(EventKind.ROOM, f"R-{tag}")[1],  # hotel-saas may not publish rooms
        {"type": "invoice", "action": "created", "data": {}},
        booking(f"B-{tag}-6"),
    ]
    outcomes = await publisher.publish_many(batch)

    assert [outcome.index for outcome in outcomes] == list(range(len(batch)))
    assert [outcome.ok for outcome in outcomes] == [True, False, True, False, False, False, True]
    assert isinstance(outcomes[1].error, EventValidationError)
    assert set(outcomes[1].error.errors) == {"data.total_amount"}
    assert outcomes[1].problem is not None and outcomes[1].problem.startswith("event 1: ")
    assert "data.total_amount" in outcomes[1].problem
    assert isinstance(outcomes[3].error, EventValidationError)
    assert set(outcomes[3].error.errors) == {"data.room_type"}
    assert isinstance(outcomes[4].error, PublishForbidden)
    assert isinstance(outcomes[5].error, EventValidationError)
    assert "type" in outcomes[5].error.errors
    assert all(outcome.published is None for outcome in outcomes if not outcome.ok)

    codec = ConfluentAvroCodec(registry)
    for index in (0, 2, 6):
        published = outcomes[index].published
        assert published is not None and outcomes[index].event is published.event
        record = await read_back(hub_settings, published)
        assert dict(record.headers)["ce_id"] == str(published.event.event_id).encode()
        decoded = await codec.decode(EventKind.RESERVATION, record.value)
        assert decoded == published.event
        assert decoded.data.reservation_id == f"B-{tag}-{index}"


async def test_validated_events_and_an_empty_batch(publisher: HotelEventPublisher) -> None:
    system, document = sample(EventKind.RESERVATION, f"B-{uuid.uuid4().hex[:8]}")
    event = build_event(document, publisher=system, default_hotel_id="HTL-1")
    [outcome] = await publisher.publish_many([event])
    assert outcome.ok and outcome.published is not None
    assert outcome.published.event is event and outcome.published.offset >= 0
    assert await publisher.publish_many([]) == []


async def test_one_unacknowledged_send_is_retried_the_rest_go_through(
    hub_settings: HubSettings, registry: SchemaRegistryClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.streams.test_publisher_validation import Flaky

    settings = hub_settings.model_copy(update={"publish_timeout_s": 1.0, "publish_attempts": 3})
    async with HotelEventPublisher(system=System.HOTEL_SAAS, registry=registry,
                                   settings=settings) as pub:
        producer = pub._producer
        assert producer is not None
        flaky = Flaky(producer.send, unanswered=1)
        monkeypatch.setattr(producer, "send", flaky)
        tag = uuid.uuid4().hex[:8]
        outcomes = await pub.publish_many([booking(f"B-{tag}-{n}") for n in range(5)])
    assert all(outcome.ok for outcome in outcomes)
    assert len(flaky.sent) == 6 and flaky.sent[0] == flaky.sent[5]  # the first, sent again
    where = {(o.published.partition, o.published.offset) for o in outcomes if o.published}
    assert len(where) == 5  # five records, none written twice by the publisher


async def test_a_missing_topic_fails_each_event_of_it_without_raising(
    hub_settings: HubSettings, registry: SchemaRegistryClient,
) -> None:
    settings = isolated(hub_settings, "missing").model_copy(update={"publish_timeout_s": 1.0})
    async with HotelEventPublisher(system=System.HOTEL_SAAS, registry=registry,
                                   settings=settings) as pub:
        outcomes = await pub.publish_many([booking("B-1"), booking("B-2", currency="JP")])
    assert isinstance(outcomes[0].error, PublishError)
    assert "does not exist" in str(outcomes[0].error)
    assert isinstance(outcomes[1].error, EventValidationError)  # validation comes first


async def test_a_publisher_not_started_raises(
    hub_settings: HubSettings, registry: SchemaRegistryClient,
) -> None:
    pub = HotelEventPublisher(system=System.HOTEL_SAAS, registry=registry, settings=hub_settings)
    with pytest.raises(PublishError, match="not started"):
        await pub.publish_many([booking("B-1")])


async def test_an_event_of_another_system_is_not_sent(
    hub_settings: HubSettings, registry: SchemaRegistryClient, publisher: HotelEventPublisher,
) -> None:
    """`send` (the offline outbox's path) checks an already built event as `build` does a
    document: the publisher's own system, and a kind it may publish."""
    theirs = build_event(booking("B-theirs"), publisher=System.HOTEL_MEMBER,
                         default_hotel_id=hub_settings.default_hotel_id)
    with pytest.raises(PublishForbidden, match="this publisher is hotel-saas"):
        await publisher.send(theirs)
    claims = theirs.model_copy(update={"updated_by_system": System.HOTEL_SAAS.value})
    async with HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                                   settings=hub_settings) as pms:
        _, document = sample(EventKind.ROOM, f"R-{uuid.uuid4().hex[:6]}", room_type="DBL",
                             status="vacant_clean", maintenance_notes=None, version=1)
        room = pms.build({**document, "action": "status_changed"})
        outcomes = await pms.publish_many([claims, room])
    assert isinstance(outcomes[0].error, PublishForbidden)
    assert outcomes[1].ok, outcomes[1].problem
