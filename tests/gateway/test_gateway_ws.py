"""The WebSocket feed on the real broker: resuming from a cursor after a cut, a cursor Kafka
has deleted past, a client too slow to keep up, and what a bad subscription is told."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from streams.core.kinds import POLICIES, EventKind
from streams.settings import HubSettings
from tests.support.gateway import (
    basic,
    gateway_settings,
    per_room,
    publish_rooms,
    running_gateway,
)
from tests.support.workers import isolated

pytestmark = pytest.mark.integration


async def test_a_client_cut_off_mid_stream_resumes_with_nothing_missing_or_doubled(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-resume"))
    run = uuid.uuid4().hex[:6]
    async with running_gateway(settings) as gateway:
        async with gateway.subscribe("hotel-member", ["room.*"]) as first:
            order = await publish_rooms(settings, rooms=10, versions=10, run=run)
            await first.receive(40)
            before = first.events[:40]
        # Cut: more is published while the client is away.
        later = await publish_rooms(settings, rooms=10, versions=5, run=run + "b")
        async with gateway.subscribe("hotel-member", ["room.*"],
                                     cursor=before[-1]["hubcursor"]) as second:
            await second.receive(60 + 50)
            await second.quiet(1.0)
            after = second.events
    everything = [*before, *after]
    ids = [event["id"] for event in everything]
    assert len(ids) == len(set(ids)) == 150
    for room, expected in {**order, **later}.items():
        assert per_room(everything)[room] == expected


async def test_a_cursor_older_than_what_kafka_keeps_is_told_so(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-expired"))
    async with running_gateway(settings) as gateway:
        async with gateway.subscribe("hotel-member", ["room.*"]) as first:
            start = first.first["cursor"]
            await publish_rooms(settings, rooms=4, versions=3, run=uuid.uuid4().hex[:6])
            await first.receive(12)
        # Retention (or an operator) deletes the start of the room topic.
        topic = settings.topic(POLICIES[EventKind.ROOM].topic)
        operator = settings.as_identity("operator")
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                    **operator.kafka_auth())
        await admin.start()
        try:
            await admin.delete_records({TopicPartition(topic, p): RecordsToDelete(-1)
                                        for p in range(settings.topic_partitions)})
        finally:
            await admin.close()
        socket = await websockets.connect(
            gateway.ws_url, additional_headers={"Authorization": basic(settings, "hotel-member")})
        await socket.send(json.dumps({"type": "subscribe", "patterns": ["room.*"],
                                      "cursor": start}))
        message = json.loads(await asyncio.wait_for(socket.recv(), 30))
        assert message["control"] == "error"
        assert message["code"] == "cursor_expired"
        assert topic in message["detail"] and "7 days" in message["detail"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4410


async def test_a_client_that_falls_behind_is_dropped_with_its_cursor_and_resumes(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-slow-ws"), gateway_client_queue=10)
    roomy = settings.model_copy(update={"gateway_client_queue": 10_000})
    run = uuid.uuid4().hex[:6]
    async with running_gateway(settings) as small, running_gateway(roomy) as large:
        async with small.subscribe("hotel-member", ["room.*"]) as slow, \
                large.subscribe("hotel-member", ["room.*"]) as other:
            order = await publish_rooms(settings, rooms=20, versions=20, run=run)
            with pytest.raises(websockets.ConnectionClosed):
                await slow.receive(400, timeout_s=60)
            # Another client of the same system is not slowed or dropped.
            await other.receive(400)
        assert slow.controls[-1]["control"] == "overflow"
        cursor = slow.controls[-1]["cursor"]
        got = slow.events
        assert len(got) < 400
        # The cursor is the deployment's, not the process's: resume on the other gateway.
        async with large.subscribe("hotel-member", ["room.*"], cursor=cursor) as resumed:
            await resumed.receive(400 - len(got))
            await resumed.quiet(1.0)
            got = [*got, *resumed.events]
    assert sorted(event["id"] for event in got) == sorted(i for ids in order.values()
                                                          for i in ids)
    assert per_room(got) == order


@pytest.mark.parametrize(("request_", "code"), [
    ({"type": "subscribe", "patterns": ["nope.*"]}, "bad_pattern"),
    ({"type": "subscribe", "patterns": ["*"], "cursor": "c1.!!"}, "bad_cursor"),
    ({"type": "subscribe", "patterns": ["*"], "since": "yesterday"}, "bad_since"),
    ({"type": "hello"}, "bad_subscribe"),
])
async def test_a_bad_subscription_is_told_what_is_wrong(
        hub_settings: HubSettings, request_: dict[str, Any], code: str) -> None:
    settings = gateway_settings(hub_settings)
    async with running_gateway(settings) as gateway:
        socket = await websockets.connect(
            gateway.ws_url, additional_headers={"Authorization": basic(settings, "hotel-pms")})
        await socket.send(json.dumps(request_))
        message = json.loads(await asyncio.wait_for(socket.recv(), 30))
        assert message == {"control": "error", "code": code, "detail": message["detail"]}
        assert message["detail"]
        await socket.close()


async def test_a_client_without_credentials_is_not_served(hub_settings: HubSettings) -> None:
    if not hub_settings.secured:
        pytest.skip("security is off")
    async with running_gateway(gateway_settings(hub_settings)) as gateway:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(gateway.ws_url)
        assert refused.value.response.status_code == 401
        assert b"credentials required" in refused.value.response.body
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(gateway.ws_url, additional_headers={
                "Authorization": basic(hub_settings, "schema-registry")})
        assert refused.value.response.status_code == 403
