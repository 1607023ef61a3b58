"""The same room sold offline and online ends with both systems told (issue 11).

A worker decides a hotel with one room of a type; a gateway process is hotel-pms's link to
the hub. The PMS client (gateway transport, following the feed) is online, then the
gateway stops: the PMS works offline from its cache (rooms, customers, its own pending
booking) and books the night of the last room. Meanwhile hotel-saas sells that night
online. The gateway comes back, the PMS syncs, the hub refuses the offline booking as
overbooked, and the refusal, a conflict, reaches hotel-pms (in its client's conflicts) and
hotel-saas (on its own WebSocket).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streams.client.client import HubClient
from streams.core.kinds import EventKind, System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import sample
from tests.support.gateway import GatewayProcess, free_port, gateway_settings
from tests.support.hotel import new_hotel_id
from tests.support.http import get, get_or_none, poll
from tests.support.workers import WorkerProcess, isolated, stopped_at_exit, worker_group

pytestmark = pytest.mark.integration

ROOM_TYPE = "STE"
NIGHT = date(2026, 12, 24)
TIMEOUT_S = 90.0
START_TIMEOUT_S = 180.0


@pytest.fixture
def deployment(hub_settings: HubSettings, tmp_path: Path
               ) -> Iterator[tuple[HubSettings, WorkerProcess, GatewayProcess]]:
    settings = gateway_settings(isolated(hub_settings, "conflict"))
    [worker] = worker_group(settings, "conflict", tmp_path, count=1)
    gateway = GatewayProcess(settings, free_port(), tmp_path / "gateway.log")
    with stopped_at_exit(worker):
        worker.start()
        gateway.start()
        try:
            yield settings, worker, gateway
        finally:
            gateway.stop()


def booking(reservation_id: str, system: System) -> dict[str, Any]:
    _, document = sample(
        EventKind.RESERVATION, reservation_id, room_type=ROOM_TYPE, room_number="1001",
        customer_id="C-ONE", checkin_date=NIGHT.isoformat(),
        checkout_date=(NIGHT + timedelta(days=1)).isoformat(),
        origin="front_desk" if system is System.HOTEL_PMS else "direct_web")
    return document


async def free_tonight(session: aiohttp.ClientSession, worker: WorkerProcess,
                       hotel_id: str) -> int | None:
    night = NIGHT.isoformat()
    answer = await get(session, f"{worker.url}/availability/{hotel_id}/{ROOM_TYPE}"
                                f"?from={night}&to={night}")
    return int(answer.body["nights"][0]["free"]) if answer.status == 200 else None


async def test_a_room_sold_offline_and_online_is_a_conflict_both_systems_hear_of(
    deployment: tuple[HubSettings, WorkerProcess, GatewayProcess], tmp_path: Path,
) -> None:
    settings, worker, gateway = deployment
    hotel = new_hotel_id()
    began = datetime.now(UTC).isoformat()
    pms_settings = settings.model_copy(update={
        "client_transport": "gateway", "gateway_url": gateway.url, "default_hotel_id": hotel,
        "client_retry_max_s": 0.5, "connect_timeout_s": 2.0, "publish_timeout_s": 5.0})
    conflicts_seen: list[dict[str, Any]] = []

    async with HubClient(System.HOTEL_PMS, settings=pms_settings, directory=tmp_path / "pms",
                         client_id="front-desk-1") as pms, aiohttp.ClientSession() as session:
        pms.on("refusal.*", conflicts_seen.append)
        assert pms.online
        try:
            await poll(lambda: get_or_none(session, f"{worker.url}/health"),
                       lambda answer: answer is not None and answer.status == 200,
                       timeout_s=START_TIMEOUT_S, what="the worker serving")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.log_tail()}") from None
        _, room = sample(EventKind.ROOM, "STE-1", room_number="1001", room_type=ROOM_TYPE,
                         status="vacant_clean", availability_date=NIGHT.isoformat(),
                         maintenance_notes=None, version=1)
        pms.publish(EventKind.ROOM, "status_changed", room["data"])
        await pms.flush(TIMEOUT_S)
        assert pms.outbox.rejected() == []
        await poll(lambda: free_tonight(session, worker, hotel), lambda free: free == 1,
                   timeout_s=TIMEOUT_S, what="the one room in the house")
        await poll(lambda: _ready(pms.cache.room(hotel, "STE-1")), bool, timeout_s=TIMEOUT_S,
                   what="the room in the PMS's cache from the feed")

        # The link fails: the PMS notices, keeps working from its cache, and books offline.
        gateway.stop()
        await poll(lambda: _ready(not pms.online), bool, timeout_s=TIMEOUT_S,
                   what="the client noticing the outage")
        offline = booking("B-OFFLINE", System.HOTEL_PMS)
        entry = pms.publish(EventKind.RESERVATION, "created", offline["data"])
        assert entry.created_offline and pms.status().pending == 1
        assert not pms.status().online
        cached_room = pms.cache.room(hotel, "STE-1")
        assert cached_room is not None and cached_room.data["status"] == "vacant_clean"
        [tonight] = pms.cache.reservations(hotel, arriving=NIGHT)
        assert tonight.entity_id == "B-OFFLINE" and tonight.pending

        # Meanwhile hotel-saas sells the night online.
        saas = settings.model_copy(update={"default_hotel_id": hotel})
        async with SchemaRegistryClient.from_settings(saas) as registry, HotelEventPublisher(
                system=System.HOTEL_SAAS, registry=registry, settings=saas) as publisher:
            await publisher.publish_document(booking("B-ONLINE", System.HOTEL_SAAS))
        await poll(lambda: free_tonight(session, worker, hotel), lambda free: free == 0,
                   timeout_s=TIMEOUT_S, what="the night sold online")

        # The link returns: the PMS syncs; the hub refuses the offline booking.
        gateway.start()
        await pms.flush(TIMEOUT_S)
        await poll(lambda: _ready(pms.conflicts()), bool, timeout_s=TIMEOUT_S,
                   what="the conflict at the front desk")
        [conflict] = pms.conflicts()
        assert conflict.refused_event_id == entry.event_id
        assert conflict.reason_code == "overbooked" and conflict.created_offline
        assert conflicts_seen and conflicts_seen[0]["refused_event_id"] == entry.event_id
        refused = pms.cache.reservation(hotel, "B-OFFLINE")
        assert refused is not None and refused.refused
        assert await free_tonight(session, worker, hotel) == 0  # sold once

        # hotel-saas, whose sale stands, is told too.
        async with gateway.running().subscribe(
                "hotel-saas", ["refusal.*"], since=began) as feed:
            [told] = await feed.receive(1, timeout_s=TIMEOUT_S)
        assert told["data"]["refused_event_id"] == entry.event_id
        assert told["data"]["created_offline"] is True
        assert "hotel-saas" in told["targets"].split(",")
        pms.resolve(conflict.refusal_id, "guest moved to a partner hotel")
        assert pms.conflicts() == []


async def _ready(value: Any) -> Any:
    return value
