"""Events read before what they need wait for it (a worker at the default grace).

Events of different partitions have no order, so a backlog can deliver a booking before
its room type's rooms, a check-in before its room, a hotel-pms update before hotel-member
created the customer. Within `HOTELHUB_ORDER_GRACE_S` (120 s of the hotel's own events)
they wait, and go on when what they need arrives: nothing is refused for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streams.core.kinds import REFUSAL_TOPIC, EventKind, System
from streams.settings import HubSettings
from tests.support.events import sample
from tests.support.hotel import new_hotel_id, publishers_of
from tests.support.http import get
from tests.support.outside import about_hotels, health, read_topic, until
from tests.support.workers import (
    WorkerProcess,
    isolated,
    stopped_at_exit,
    worker_group,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def own_settings(hub_settings: HubSettings) -> HubSettings:
    return isolated(hub_settings, "waiting")


@pytest.fixture
def worker(own_settings: HubSettings, tmp_path: Path) -> Iterator[WorkerProcess]:
    (process,) = worker_group(own_settings, "waiting", tmp_path, count=1)
    with stopped_at_exit(process):
        process.start()
        yield process


def doc(hotel: str, kind: EventKind, entity: str, action: str, **data: Any
        ) -> tuple[System, dict[str, Any]]:
    system, document = sample(kind, entity, **data)
    return system, {**document, "action": action, "hotel_id": hotel}


async def test_what_arrives_before_its_room_type_room_or_customer_waits_for_it(
    own_settings: HubSettings, worker: WorkerProcess
) -> None:
    hotel = new_hotel_id()
    async with aiohttp.ClientSession() as session, publishers_of(own_settings) as publishers:
        await until([worker], lambda: health(session, worker),
                    lambda answer: answer is not None and answer.status == 200,
                    "the worker serving", timeout_s=90)

        async def ask(path: str) -> Any:
            return await get(session, worker.url + path)

        early = [
            doc(hotel, EventKind.RESERVATION, "B1", "created", room_type="DBL",
                customer_id="C1"),
            doc(hotel, EventKind.CUSTOMER, "C1", "updated", email="desk@example.com",
                updated_fields=["email"], version=2),
        ]
        early[1] = (System.HOTEL_PMS, early[1][1])
        for system, document in early:
            await publishers[system].publish_document(document)
        # Both wait: nothing is decided about B1 or C1 yet.
        await until([worker], lambda: ask(f"/reservations/{hotel}/B1"),
                    lambda answer: answer.status == 404, "B1 waiting", timeout_s=30)

        later = [
            doc(hotel, EventKind.ROOM, "RM-201", "status_changed", room_type="DBL",
                status="vacant_clean", maintenance_notes=None, version=1),
            doc(hotel, EventKind.CUSTOMER, "C1", "created", version=1),
        ]
        for system, document in later:
            await publishers[system].publish_document(document)
        stay = await until([worker], lambda: ask(f"/reservations/{hotel}/B1"),
                           lambda answer: answer.status == 200, "B1 applied", timeout_s=60)
        assert stay.body["status"] == "confirmed"

        check_in = doc(hotel, EventKind.CHECKIN_CHECKOUT, "B1", "checked_in", room_id="RM-202",
                       room_number="202", actual_checkout_time=None,
                       additional_charges=None, payment_status="pending")
        await publishers[System.HOTEL_PMS].publish_document(check_in[1])
        # The room as the PMS reported it before the check-in, delivered after it.
        _, room_202 = doc(hotel, EventKind.ROOM, "RM-202", "status_changed", room_type="DBL",
                          status="vacant_clean", maintenance_notes=None, version=1)
        room_202["occurred_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        await publishers[System.HOTEL_PMS].publish_document(room_202)
        room = await until([worker], lambda: ask(f"/rooms/{hotel}/RM-202"),
                           lambda answer: answer.status == 200
                           and answer.body["status"] == "occupied_clean",
                           "RM-202 occupied by B1", timeout_s=60)
        assert room.body["current_reservation_id"] == "B1"
        customer = await until([worker], lambda: ask(f"/customers/{hotel}/C1"),
                               lambda answer: answer.status == 200
                               and answer.body["email"] == "desk@example.com",
                               "C1 created, then updated by the front desk", timeout_s=60)
        assert customer.body["versions"] == {"hotel-member": 1, "hotel-pms": 2}
        refused = about_hotels(await read_topic(own_settings, own_settings.topic(
            REFUSAL_TOPIC)), [hotel])
        assert refused == []
