"""The publisher refuses bad or forbidden events with errors that name the field."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.documents import build_event
from streams.core.exceptions import EventValidationError, PublishError, PublishForbidden
from streams.core.kinds import EventKind, Priority, System
from streams.runners.admin import ensure_topics
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import sample
from tests.support.workers import isolated


def reservation(**data: Any) -> dict[str, Any]:
    return {
        "type": "reservation",
        "action": "created",
        "data": {
            "reservation_id": "B1", "room_type": "DBL", "checkin_date": "2026-11-23",
            "checkout_date": "2026-11-25", "total_amount": "29000", "currency": "JPY",
            "status": "confirmed", "origin": "phone", "version": 1, **data,
        },
    }


def build(document: dict[str, Any], system: System = System.HOTEL_PMS) -> Any:
    return build_event(document, publisher=system, default_hotel_id="HTL-1")


def test_enriches_with_ids_times_and_the_kind_policy() -> None:
    event = build(reservation())
    assert event.hotel_id == "HTL-1"
    assert event.priority is Priority.HIGH
    assert event.targets == ["hotel-member", "hotel-pms", "hotel-saas"]
    assert event.origin_system == event.updated_by_system == "hotel-pms"
    assert event.synced_at is not None and event.occurred_at.microsecond % 1000 == 0


def test_missing_and_wrong_fields_are_named() -> None:
    document = reservation(total_amount="abc")
    del document["data"]["room_type"]
    with pytest.raises(EventValidationError) as caught:
        build(document)
    assert set(caught.value.errors) == {"data.room_type", "data.total_amount"}
    assert "data.room_type" in str(caught.value)


def test_money_as_float_is_refused() -> None:
    with pytest.raises(EventValidationError) as caught:
        build(reservation(total_amount=12000.5))
    assert "not a float" in caught.value.errors["data.total_amount"]


def test_more_decimals_than_the_contract_are_refused() -> None:
    with pytest.raises(EventValidationError) as caught:
        build(reservation(total_amount="10.12345"))
    assert "data.total_amount" in caught.value.errors


def test_checkout_before_checkin_is_refused() -> None:
    with pytest.raises(EventValidationError, match="checkout_date must be after"):
        build(reservation(checkout_date="2026-11-22"))


def test_critical_event_cannot_be_downgraded() -> None:
    document = {
        "type": "checkin_checkout", "action": "checked_in", "priority": "LOW",
        "delivery_guarantee": "at_least_once",
        "data": {"reservation_id": "B1", "room_number": "201", "payment_status": "pending"},
    }
    with pytest.raises(EventValidationError) as caught:
        build(document)
    assert set(caught.value.errors) == {"priority", "delivery_guarantee"}


def test_stating_the_fixed_values_is_accepted() -> None:
    event = build({**reservation(), "priority": "HIGH", "targets": ["hotel-member", "hotel-pms",
                                                                    "hotel-saas"]})
    assert event.priority is Priority.HIGH


@pytest.mark.parametrize(
    ("kind", "system"),
    [("room", System.HOTEL_MEMBER), ("checkin_checkout", System.HOTEL_SAAS),
     ("customer", System.HOTEL_SAAS), ("analytics", System.HOTEL_PMS)],
)
def test_who_may_publish_what(kind: str, system: System) -> None:
    with pytest.raises(PublishForbidden, match=f"{system} may not publish {kind}"):
        build({"type": kind, "action": "x", "data": {}}, system)


def test_unknown_kind_names_the_type_field() -> None:
    with pytest.raises(EventValidationError) as caught:
        build({"type": "invoice", "action": "created", "data": {}})
    assert "type" in caught.value.errors


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(EventValidationError) as caught:
        build({**reservation(), "occurred_at": datetime(2026, 11, 23, 9, 0)})
    assert "occurred_at" in caught.value.errors
    assert build({**reservation(), "occurred_at": datetime(2026, 11, 23, tzinfo=UTC)})


def test_updated_by_cannot_be_spoofed() -> None:
    with pytest.raises(EventValidationError) as caught:
        build({**reservation(), "updated_by_system": "hotel-member"})
    assert "updated_by_system" in caught.value.errors


# -- a send that times out is retried with the same event (real broker) ----------------------


@pytest.fixture
async def slow_publisher(hub_settings: HubSettings) -> AsyncIterator[HotelEventPublisher]:
    """A publisher that waits 1 s per attempt, 3 attempts, on the session's topics."""
    await ensure_topics(hub_settings)
    settings = hub_settings.model_copy(update={"publish_timeout_s": 1.0, "publish_attempts": 3})
    async with (
        SchemaRegistryClient(hub_settings.registry_url) as registry,
        HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                            settings=settings) as publisher,
    ):
        yield publisher


class Flaky:
    """Stands in for the producer's `send`: the first `unanswered` records get a future that
    is never acknowledged (after really sending the record when `deliver_late`); later
    calls go through."""

    def __init__(self, real: Callable[..., Awaitable[Any]], *, unanswered: int,
                 deliver_late: bool = False) -> None:
        self.real, self.unanswered, self.deliver_late = real, unanswered, deliver_late
        self.sent: list[tuple[bytes, bytes]] = []
        self.late: list[asyncio.Future[Any]] = []

    async def __call__(self, topic: str, value: bytes, *, key: bytes, headers: Any) -> Any:
        self.sent.append((key, value))
        if len(self.sent) <= self.unanswered:
            if self.deliver_late:
                self.late.append(await self.real(topic, value, key=key, headers=headers))
            return asyncio.get_running_loop().create_future()  # never acknowledged
        return await self.real(topic, value, key=key, headers=headers)


async def records_with_id(settings: HubSettings, topic: str, partition: int,
                          event_id: str, until: int) -> list[int]:
    """Offsets in [0, until] of `partition` whose CloudEvents id is `event_id`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        where = TopicPartition(topic, partition)
        consumer.assign([where])
        await consumer.seek_to_beginning(where)
        found: list[int] = []
        position = -1
        while position < until:
            batch = await consumer.getmany(where, timeout_ms=2000)
            if not batch:
                break
            for record in batch[where]:
                position = record.offset
                if dict(record.headers).get("ce_id") == event_id.encode():
                    found.append(record.offset)
        return found
    finally:
        await consumer.stop()


def room_event() -> Any:
    system, document = sample(EventKind.ROOM, f"R-retry-{uuid.uuid4().hex[:8]}")
    return build_event(document, publisher=system, default_hotel_id="HTL-1")


@pytest.mark.integration
async def test_a_timed_out_send_is_retried_with_the_same_event(
    slow_publisher: HotelEventPublisher, hub_settings: HubSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = slow_publisher._producer
    assert producer is not None
    flaky = Flaky(producer.send, unanswered=1)
    monkeypatch.setattr(producer, "send", flaky)
    event = room_event()
    published = await slow_publisher.send(event)
    assert published.event.event_id == event.event_id
    assert len(flaky.sent) == 2 and flaky.sent[0] == flaky.sent[1]  # same key, same bytes
    assert await records_with_id(hub_settings, published.topic, published.partition,
                                 str(event.event_id), published.offset) == [published.offset]


@pytest.mark.integration
async def test_a_late_acknowledgement_and_its_retry_carry_one_event_id(
    slow_publisher: HotelEventPublisher, hub_settings: HubSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first send lands after its timeout: the retry is a copy with the same id, which
    the hub's dedupe recognises, never a second event."""
    producer = slow_publisher._producer
    assert producer is not None
    flaky = Flaky(producer.send, unanswered=1, deliver_late=True)
    monkeypatch.setattr(producer, "send", flaky)
    event = room_event()
    published = await slow_publisher.send(event)
    late = await asyncio.gather(*flaky.late)
    offsets = await records_with_id(hub_settings, published.topic, published.partition,
                                    str(event.event_id), max(published.offset, late[0].offset))
    assert sorted(offsets) == sorted({published.offset, late[0].offset})
    assert len(offsets) == 2


@pytest.mark.integration
async def test_no_acknowledgement_at_all_is_a_publish_error_after_the_attempts(
    slow_publisher: HotelEventPublisher, monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = slow_publisher._producer
    assert producer is not None
    flaky = Flaky(producer.send, unanswered=10)
    monkeypatch.setattr(producer, "send", flaky)
    event = room_event()
    with pytest.raises(PublishError) as caught:
        await slow_publisher.send(event)
    assert len(flaky.sent) == 3
    assert str(event.event_id) in str(caught.value) and "3 time(s)" in str(caught.value)


@pytest.mark.integration
async def test_a_missing_topic_is_named_not_retried(
    hub_settings: HubSettings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Topics of a prefix of its own that nobody created, but the ACLs grant: a broker
    # answers "not authorized", not "missing", for a topic the client may not describe.
    settings = isolated(hub_settings, "missing").model_copy(update={"publish_timeout_s": 1.0})
    async with (
        SchemaRegistryClient(hub_settings.registry_url) as registry,
        HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                            settings=settings) as publisher,
    ):
        with pytest.raises(PublishError, match="does not exist"):
            await publisher.send(room_event())


@pytest.mark.integration
async def test_a_topic_the_system_may_not_write_is_named(hub_settings: HubSettings) -> None:
    if not hub_settings.secured:
        pytest.skip("the broker enforces ACLs only with security on")
    settings = hub_settings.model_copy(update={"publish_timeout_s": 1.0})
    async with (
        SchemaRegistryClient(hub_settings.registry_url) as registry,
        HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                            settings=settings) as publisher,
    ):
        event = publisher.build(reservation())
        # hotel-pms may publish reservations: send it to the analytics topic instead.
        record = publisher._record(event)
        forbidden = type(record)(record.event, settings.topic("hotel.analytics"), record.key,
                                 record.value, record.headers)
        outcome = (await publisher._deliver({0: forbidden}))[0]
    assert isinstance(outcome, PublishError)
    assert "hotel-pms may not write" in str(outcome)
    assert settings.topic("hotel.analytics") in str(outcome)
