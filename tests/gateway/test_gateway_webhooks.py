"""Webhook delivery on the real broker with a real receiver: retries while it is down, in
order per entity, Retry-After, 410, dead letters and their replay, the delivery log, and one
slow endpoint never holding up another. Signatures are checked by `standardwebhooks`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.core.documents import build_event
from streams.core.kinds import DELIVERY_LOG_TOPIC, POLICIES, EventKind, System
from streams.core.models import record_key
from streams.settings import HubSettings
from streams.wire.cloudevents import headers_for
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.collector import eventually
from tests.support.events import sample
from tests.support.gateway import (
    Receiver,
    RunningGateway,
    gateway_settings,
    per_room,
    publish_rooms,
    receiver,
    running_gateway,
)
from tests.support.workers import isolated

pytestmark = pytest.mark.integration


async def _register(gateway: RunningGateway, hook: Receiver, system: str = "hotel-member",
                    patterns: list[str] | None = None) -> str:
    async with gateway.client(system) as client:
        answer = await client.post("/webhooks", json={"url": hook.url,
                                                      "patterns": patterns or ["room.*"]})
        assert answer.status_code == 201, answer.text
        hook.secret = answer.json()["secret"]
        return str(answer.json()["id"])


def _status(code: int, **headers: str) -> web.Response:
    return web.Response(status=code, headers=headers)


async def test_a_receiver_down_for_a_while_gets_everything_in_order_per_entity(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-down"),
                                webhook_retry_schedule_s=[0.3, 0.6, 1.2, 2.4, 4.8])
    async with running_gateway(settings) as gateway, receiver() as hook:
        await _register(gateway, hook)
        down_until = time.monotonic() + 2.0
        hook.answer = lambda _: (_status(503) if time.monotonic() < down_until
                                 else _status(204))
        order = await publish_rooms(settings, rooms=6, versions=5)
        await hook.wait_for(30)
        await asyncio.sleep(0.5)
        assert hook.bad == []
        assert hook.calls > 30  # it was down: some events took several attempts
        assert sorted(hook.ids()) == sorted(i for ids in order.values() for i in ids)
        assert per_room(item.body for item in hook.received) == order


async def test_retry_after_is_honoured(hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-retry-after"),
                                webhook_retry_schedule_s=[0.1, 0.1])
    calls = 0

    def answer(_: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return _status(429, **{"Retry-After": "2"}) if calls == 1 else _status(204)

    async with running_gateway(settings) as gateway, receiver() as hook:
        await _register(gateway, hook)
        hook.answer = answer
        await publish_rooms(settings, rooms=1, versions=1)
        await hook.wait_for(1)
        assert calls == 2
    # The retry was scheduled by the receiver's 2 s, not the schedule's 0.1 s: the delivery
    # log says when the next attempt was due (a decision, not a measured wait).
    retrying, success = await _delivery_log(settings, 2)
    assert (retrying["delivery_status"], success["delivery_status"]) == ("retrying", "success")
    assert retrying["http_status"] == 429
    assert (retrying["next_attempt_at"] - retrying["timestamp"]).total_seconds() >= 1.9


async def test_a_receiver_that_never_returns_ends_in_dead_letters_that_replay_cleanly(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-dead"),
                                webhook_retry_schedule_s=[0.1, 0.2])
    async with running_gateway(settings) as gateway, receiver() as hook:
        endpoint = await _register(gateway, hook)
        hook.answer = lambda _: _status(500)
        order = await publish_rooms(settings, rooms=3, versions=3)
        async with gateway.client("hotel-member") as member:
            async def dead() -> list[dict[str, Any]]:
                answer = await member.get(f"/webhooks/{endpoint}/dead-letters")
                return list(answer.json())

            await eventually(lambda: _count(dead, 9), timeout_s=60)
            letters = await dead()
            assert {letter["reason"] for letter in letters} == {"retries_exhausted"}
            assert all(len(letter["attempts"]) == 3 for letter in letters)
            assert all(a["outcome"] == "http_500" for letter in letters
                       for a in letter["attempts"])
            assert hook.received == []
            hook.answer = None
            replay = await member.post(f"/webhooks/{endpoint}/replay",
                                       json={"dead_letters": True})
            assert replay.status_code == 202
            assert replay.json() == {"replayed": 9}
            await hook.wait_for(9)
            await asyncio.sleep(0.5)
            assert hook.bad == []
            assert per_room(item.body for item in hook.received) == order
        log = await _delivery_log(settings, 9 * 3 + 9)
        statuses = defaultdict(list)
        for record in log:
            statuses[str(record["event_id"])].append(record["delivery_status"])
        for ids in order.values():
            for event_id in ids:
                assert statuses[event_id] == ["retrying", "retrying", "failed", "success"]


async def _count(read: Any, at_least: int) -> bool:
    return len(await read()) >= at_least


async def _delivery_log(settings: HubSettings, count: int) -> list[dict[str, Any]]:
    """The first `count` EventDeliveryLog records, decoded with the registered contract."""
    topic = settings.topic(DELIVERY_LOG_TOPIC)
    found: list[dict[str, Any]] = []
    async with SchemaRegistryClient.from_settings(settings) as registry:
        codec = ConfluentAvroCodec(registry)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                    **settings.kafka_auth(), auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(settings.topic_partitions)])
            async with asyncio.timeout(60):
                while len(found) < count:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            found.append(await codec.decode_record("delivery_log",
                                                                   record.value))
        finally:
            await consumer.stop()
    found.sort(key=lambda record: record["timestamp"])
    return found


async def test_410_disables_the_endpoint_until_it_is_made_active_again(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-gone"))
    async with running_gateway(settings) as gateway, receiver() as hook, \
            gateway.client("hotel-member") as member:
        endpoint = await _register(gateway, hook)
        hook.answer = lambda _: _status(410)
        await publish_rooms(settings, rooms=1, versions=1)

        async def disabled() -> bool:
            answer = await member.get(f"/webhooks/{endpoint}")
            return bool(answer.json()["status"] == "disabled")

        await eventually(disabled, timeout_s=30)
        calls = hook.calls
        await publish_rooms(settings, rooms=2, versions=1)
        letters: list[dict[str, Any]] = []

        async def three_dead() -> bool:
            letters[:] = (await member.get(f"/webhooks/{endpoint}/dead-letters")).json()
            return len(letters) == 3

        await eventually(three_dead, timeout_s=30)
        assert hook.calls == calls  # a disabled endpoint is not called
        assert [letter["reason"] for letter in letters] == ["endpoint_disabled"] * 3
        hook.answer = None
        assert (await member.patch(f"/webhooks/{endpoint}", json={"status": "active"})
                ).json()["status"] == "active"
        await member.post(f"/webhooks/{endpoint}/replay", json={"dead_letters": True})
        await hook.wait_for(3)
        assert hook.bad == []


async def test_replay_since_a_time_and_one_slow_endpoint_never_delays_another(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-slow"))
    since = datetime.now(UTC)
    async with running_gateway(settings) as gateway, receiver() as slow, receiver() as fast:
        await _register(gateway, slow, "hotel-pms")
        await _register(gateway, fast, "hotel-member")

        async def slowly(_: web.Request) -> web.Response:
            await asyncio.sleep(3)
            return _status(204)

        slow.answer = slowly
        order = await publish_rooms(settings, rooms=20, versions=1)
        await fast.wait_for(20, timeout_s=30)
        assert len(slow.received) < 20  # still working through its 3 s answers
        assert per_room(item.body for item in fast.received) == order
        # Replaying since before the publish sends each event once more, in order.
        late = await _register(gateway, fast, "hotel-member")
        fast.received.clear()
        async with gateway.client("hotel-member") as member:
            replay = await member.post(f"/webhooks/{late}/replay",
                                       json={"since": since.isoformat()})
        assert replay.json() == {"replayed": 20}
        await fast.wait_for(20, timeout_s=30)
        await slow.wait_for(20, timeout_s=60)


async def test_replay_since_reads_to_the_end_of_transactional_partitions(
        hub_settings: HubSettings) -> None:
    """The hub writes room events in transactions; each ends with a commit marker past the
    last record, which a replay must step over rather than wait for a record there."""
    settings = gateway_settings(isolated(hub_settings, "gw-replay-tx"))
    _, document = sample(EventKind.ROOM, f"R-TX-{uuid.uuid4().hex[:6]}")
    event = build_event(document, publisher=System.HOTEL_PMS, default_hotel_id="HTL-TYO-01")
    async with running_gateway(settings) as gateway, receiver() as hook:
        endpoint = await _register(gateway, hook)
        since = datetime.now(UTC)
        async with SchemaRegistryClient.from_settings(settings) as registry:
            codec = ConfluentAvroCodec(registry)
            await codec.register()
            producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                        **settings.kafka_auth(),
                                        transactional_id=f"{settings.app_id}-replay-test")
            await producer.start()
            try:
                async with producer.transaction():
                    await producer.send(settings.topic(POLICIES[EventKind.ROOM].topic),
                                        codec.encode(event), key=record_key(event),
                                        headers=headers_for(event))
            finally:
                await producer.stop()
        await hook.wait_for(1)  # delivered live first
        async with gateway.client("hotel-member") as member:
            replay = await asyncio.wait_for(member.post(
                f"/webhooks/{endpoint}/replay", json={"since": since.isoformat()}), 60)
        assert replay.json() == {"replayed": 1}
        await eventually(lambda: len(hook.received) == 2, timeout_s=30)
        assert hook.ids() == [str(event.event_id)] * 2
