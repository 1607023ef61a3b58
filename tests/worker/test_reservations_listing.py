"""`GET /reservations/{hotel_id}?arriving=&departing=` of a real worker: a hotel's stays
checking in or out on a day, in room order, with the rooms listing's access rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streams.core.kinds import EventKind, System
from streams.settings import HubSettings
from tests.support.events import sample
from tests.support.hotel import new_hotel_id, publishers_of
from tests.support.http import Answer, as_basic_auth, get, query_identity
from tests.support.outside import health, until
from tests.support.workers import isolated, stopped_at_exit, worker_group

pytestmark = pytest.mark.integration

STAYS = {  # reservation id: (room number, check-in, check-out)
    "B-in-1": ("301", "2026-11-24", "2026-11-26"),
    "B-in-2": ("105", "2026-11-24", "2026-11-25"),
    "B-out": ("210", "2026-11-22", "2026-11-24"),
    "B-later": ("302", "2026-11-25", "2026-11-27"),
}


def _booking(reservation_id: str) -> tuple[System, dict[str, Any]]:
    number, checkin, checkout = STAYS[reservation_id]
    system, document = sample(EventKind.RESERVATION, reservation_id, room_type="DBL",
                              room_number=number, checkin_date=checkin, checkout_date=checkout)
    return system, document


async def test_stays_arriving_and_departing_on_a_day(hub_settings: HubSettings,
                                                     tmp_path: Path) -> None:
    own = isolated(hub_settings, "stays")
    [worker] = worker_group(own, "stays", tmp_path, count=1,
                            extra_env={"HOTELHUB_REPORT_TICK_S": "0"})
    hotel, other = new_hotel_id(), new_hotel_id()
    with stopped_at_exit(worker), query_identity(own, other) as stranger:
        worker.start()
        async with aiohttp.ClientSession() as session:
            await until([worker], lambda: health(session, worker),
                        lambda answer: answer is not None and answer.status == 200,
                        "healthy worker", timeout_s=120)
            async with publishers_of(own) as publishers:
                for index in range(4):  # the booked type in the house first
                    system, room = sample(EventKind.ROOM, f"R{index}", room_type="DBL",
                                          room_number=f"10{index}", status="vacant_clean")
                    await publishers[system].publish_document({**room, "hotel_id": hotel})
                await until([worker], lambda: get(session, f"{worker.url}/rooms/{hotel}"),
                            lambda answer: answer.status == 200 and answer.body["count"] == 4,
                            "the rooms", timeout_s=60)
                for reservation_id in STAYS:
                    system, document = _booking(reservation_id)
                    await publishers[system].publish_document({**document, "hotel_id": hotel})

            async def ids(query: str) -> list[str]:
                answer = await get(session, f"{worker.url}/reservations/{hotel}?{query}")
                assert answer.status == 200, answer
                assert answer.body["count"] == len(answer.body["reservations"])
                return [stay["reservation_id"] for stay in answer.body["reservations"]]

            arriving = await until([worker], lambda: ids("arriving=2026-11-24"),
                                   lambda found: len(found) == 2, "today's arrivals",
                                   timeout_s=60)
            assert arriving == ["B-in-2", "B-in-1"]  # room 105 before 301
            await until([worker], lambda: ids("departing=2026-11-24"),
                        lambda found: found == ["B-out"], "today's departure", timeout_s=30)
            assert await ids("arriving=2026-11-24&departing=2026-11-25") == ["B-in-2"]
            assert await ids("arriving=2026-11-23") == []
            listing = await get(session, f"{worker.url}/reservations/{hotel}"
                                "?arriving=2026-11-24")
            first = listing.body["reservations"][0]
            assert listing.body["filters"] == {"arriving": "2026-11-24", "departing": None}
            assert (first["status"], first["checkin_date"], first["checkout_date"]) == (
                "confirmed", "2026-11-24", "2026-11-25")
            assert "pending_movements" not in first

            for query, named in (("", "'arriving' or 'departing'"),
                                 ("arriving=tomorrow", "'arriving'"),
                                 ("departing=2026-02-30", "'departing'")):
                bad = await get(session, f"{worker.url}/reservations/{hotel}?{query}")
                assert bad.status == 400 and bad.body["error"] == "bad_request", bad
                assert named in bad.body["detail"]

            path = f"{worker.url}/reservations/{hotel}?arriving=2026-11-24"
            refused: Answer = await get(session, path, auth=None)
            assert refused.status == 401
            foreign = await get(session, path, auth=as_basic_auth(stranger))
            assert foreign.status == 403 and hotel in foreign.body["detail"]
            own_hotel = await get(session, f"{worker.url}/reservations/{other}"
                                  "?departing=2026-11-24", auth=as_basic_auth(stranger))
            assert own_hotel.status == 200 and own_hotel.body["reservations"] == []
