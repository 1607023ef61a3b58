"""A cold backlog is forwarded in timestamp order across the event topics (real broker).

Rooms are published first, behind thousands of other records of the room topic; the
bookings (another topic) are published after them and sit at the head of their
partitions, so a reader that forwards whatever it fetched first would see the bookings
long before their room type and overflow the hotel's waiting room (100 events). The
processor forwards by timestamp across every source partition not yet read to its end:
nothing is refused, every booking is taken.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.core.kinds import EventKind, System
from streams.core.step import STAY
from streams.runners.hotel_processor import HotelProcessor
from streams.settings import HubSettings

try:  # where the topic helpers live moves (streams.wire.topics -> streams.runners.admin)
    from streams.runners.admin import ensure_topics
except ImportError:  # pragma: no cover
    from streams.wire.topics import ensure_topics  # type: ignore[attr-defined,no-redef]
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import sample
from tests.support.hotel import new_hotel_id, publishers_of
from tests.support.workers import isolated

pytestmark = pytest.mark.integration

FILLER, BOOKINGS = 3_000, 300


def room(hotel: str, room_id: str) -> dict[str, Any]:
    _, document = sample(EventKind.ROOM, room_id, room_type="DBL", status="vacant_clean",
                         maintenance_notes=None, version=1)
    return {**document, "action": "status_changed", "hotel_id": hotel}


def booking(hotel: str, index: int) -> dict[str, Any]:
    _, document = sample(EventKind.RESERVATION, f"R{index:04d}", room_type="DBL",
                         checkin_date="2026-12-01", checkout_date="2026-12-02")
    return {**document, "hotel_id": hotel}


async def test_bookings_read_before_their_room_type_are_not_refused(
        hub_settings: HubSettings) -> None:
    settings = isolated(hub_settings, "order").model_copy(
        update={"overbooking": {"*": {"*": str(BOOKINGS)}}})
    await ensure_topics(settings)
    hotel, other = new_hotel_id(), new_hotel_id()
    async with publishers_of(settings) as publishers:
        pms, saas = publishers[System.HOTEL_PMS], publishers[System.HOTEL_SAAS]
        for start in range(0, FILLER, 500):
            await asyncio.gather(*(pms.publish_document(room(other, f"F{i:05d}"))
                                   for i in range(start, start + 500)))
        await pms.publish_document(room(hotel, "RM-1"))
        await asyncio.sleep(0.05)  # the bookings are stamped later than the room
        await asyncio.gather(*(saas.publish_document(booking(hotel, i))
                               for i in range(BOOKINGS)))

    applied: set[str] = set()
    done = asyncio.Event()
    async with SchemaRegistryClient(settings.registry_url) as registry:
        processor = HotelProcessor(settings.model_copy(update={"app_id": settings.topic("app")}),
                                   ConfluentAvroCodec(registry), settings.rules())

        def sink(event: Any) -> None:
            if event.hotel_id == hotel and event.type == EventKind.RESERVATION.value:
                applied.add(str(event.event_id))
                if len(applied) == BOOKINGS:
                    done.set()

        processor.add_sink(sink)
        from streams.ops.metrics import refusals_total

        before = sum(sample.value for metric in refusals_total.collect()
                     for sample in metric.samples if sample.name.endswith("_total"))
        await processor.start()
        try:
            await asyncio.wait_for(done.wait(), timeout=120)
            stays = [processor.state(STAY, f"{hotel}:R{i:04d}".encode())
                     for i in range(BOOKINGS)]
        finally:
            await processor.stop()
        after = sum(sample.value for metric in refusals_total.collect()
                    for sample in metric.samples if sample.name.endswith("_total"))
    assert processor.failure is None
    assert after - before == 0, f"{after - before} events refused"
    assert all(stay is not None and stay.known for stay in stays)
