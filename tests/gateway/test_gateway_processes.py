"""Real `hotelhub gateway` processes: two at once deliver each event once per WebSocket
connection and once per webhook endpoint; one killed with SIGKILL mid-delivery loses nothing
(its deliveries come again, with the same webhook-id)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from streams.settings import HubSettings
from tests.support.collector import eventually
from tests.support.gateway import (
    GatewayProcess,
    Receiver,
    free_port,
    gateway_settings,
    per_room,
    publish_rooms,
    receiver,
)
from tests.support.workers import isolated

pytestmark = pytest.mark.integration


async def _register(process: GatewayProcess, hook: Receiver) -> None:
    async with process.running().client("hotel-member") as member:
        answer = await member.post("/webhooks", json={"url": hook.url, "patterns": ["room.*"]})
        assert answer.status_code == 201, answer.text
        hook.secret = answer.json()["secret"]


async def _start(*processes: GatewayProcess) -> None:
    await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))


async def test_two_gateways_deliver_each_event_once_per_connection_and_per_endpoint(
        hub_settings: HubSettings, tmp_path: Path) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-two"))
    one = GatewayProcess(settings, free_port(), tmp_path / "one.log")
    two = GatewayProcess(settings, free_port(), tmp_path / "two.log")
    try:
        await _start(one, two)
        async with receiver() as hook:
            await _register(one, hook)
            async with one.running().subscribe("hotel-member", ["room.*"]) as ws_one, \
                    two.running().subscribe("hotel-member", ["room.*"]) as ws_two:
                order = await publish_rooms(settings, rooms=20, versions=10)
                everything = sorted(i for ids in order.values() for i in ids)
                for socket in (ws_one, ws_two):
                    await socket.receive(200)
                    await socket.quiet(1.0)
                    assert sorted(event["id"] for event in socket.events) == everything
                await hook.wait_for(200)
                await asyncio.sleep(1.0)
                assert sorted(hook.ids()) == everything  # once, not once per process
                assert hook.bad == []
                assert per_room((item.body for item in hook.received), first_seen=True) == order
    finally:
        one.stop()
        two.stop()


async def test_a_gateway_killed_mid_delivery_loses_nothing(
        hub_settings: HubSettings, tmp_path: Path) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-kill"))
    first = GatewayProcess(settings, free_port(), tmp_path / "first.log")
    second = GatewayProcess(settings, free_port(), tmp_path / "second.log")
    try:
        await _start(first)
        async with receiver() as hook:
            await _register(first, hook)

            async def slowly(_: web.Request) -> web.Response:
                await asyncio.sleep(0.1)
                return web.Response(status=204)

            hook.answer = slowly
            order = await publish_rooms(settings, rooms=8, versions=25)
            await eventually(lambda: len(hook.received) >= 60, timeout_s=60)
            first.kill()
            killed_at = len(hook.received)
            assert killed_at < 200
            await _start(second)
            await hook.wait_for(200, timeout_s=120)
            await asyncio.sleep(1.0)
            assert hook.bad == []
            assert sorted(set(hook.ids())) == sorted(i for ids in order.values() for i in ids)
            assert per_room((item.body for item in hook.received), first_seen=True) == order
            # What was in flight or delivered since the last commit came again, with the same
            # webhook-id (so the receiver can drop it): at least once, never lost.
            assert len(hook.ids()) > len(set(hook.ids()))
    finally:
        first.stop()
        second.stop()


