"""The table queries of the in-process hub: state after publishing, filters, 404s and 400s.

Asked as the operator, who sees every hotel (`ask` sends `tests.support.http`'s default
credentials); who may ask what is `tests/agents/test_query_auth.py`'s.
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.core.kinds import EventKind, System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from tests.support.collector import ProcessedEvents
from tests.support.events import sample
from tests.support.hotel import new_hotel_id
from tests.support.http import Answer, floats_in, money, poll

pytestmark = pytest.mark.integration


async def _publish(publishers: dict[System, HotelEventPublisher], processed: ProcessedEvents,
                   hotel_id: str, *documents: tuple[System, dict[str, Any]]) -> None:
    """Publish in order and wait until the agents have processed every event."""
    ids = []
    for system, document in documents:
        document["hotel_id"] = hotel_id
        published = await publishers[system].publish_document(document)
        ids.append(published.event.event_id)
    await processed.wait_for(ids)


async def _served(ask: Any, path: str, done: Any = None) -> Answer:
    """Poll briefly: a table write lands just after the agent's sink sees the event."""
    return await poll(lambda: ask(path), done or (lambda answer: answer.status == 200),
                      timeout_s=20, interval_s=0.1, what=f"an answer for {path}")


def _room(room_id: str, number: str, room_type: str, status: str,
          night: str = "2026-11-24") -> tuple[System, dict[str, Any]]:
    system, document = sample(EventKind.ROOM, room_id, room_number=number, room_type=room_type,
                              status=status, availability_date=night)
    document["action"] = "status_changed"
    return system, document


async def test_one_room_customer_and_reservation_after_publishing(
    ask: Any, processed: ProcessedEvents, publishers: dict[System, HotelEventPublisher]
) -> None:
    hotel = new_hotel_id()
    await _publish(publishers, processed, hotel,
                   sample(EventKind.ROOM, "R1", base_price="15800.5"),
                   _room("R2", "201", "DBL", "vacant_clean"),
                   sample(EventKind.CUSTOMER, "C1", total_points=4321))
    # A booking takes a room type the hub knows: the rooms come first.
    await _publish(publishers, processed, hotel,
                   sample(EventKind.RESERVATION, "B1", total_amount="29000.500"))

    room = await _served(ask, f"/rooms/{hotel}/R1")
    assert room.body["hotel_id"] == hotel and room.body["room_id"] == "R1"
    assert room.body["room_number"] == "305" and room.body["status"] == "out_of_order"
    assert money(room.body["base_price"]) == money("15800.5")
    assert room.body["availability_date"] == "2026-11-24"
    assert room.body["out_of_order_dates"] == ["2026-11-24"]

    customer = await _served(ask, f"/customers/{hotel}/C1")
    assert customer.body["customer_id"] == "C1" and customer.body["total_points"] == 4321
    assert customer.body["rank_id"] == "gold" and customer.body["version"] == 3

    reservation = await _served(ask, f"/reservations/{hotel}/B1")
    assert reservation.body["reservation_id"] == "B1"
    assert reservation.body["status"] == "confirmed"
    assert money(reservation.body["total_amount"]) == money("29000.5")
    assert (reservation.body["checkin_date"], reservation.body["checkout_date"]) == (
        "2026-11-23", "2026-11-25")

    for answer in (room, customer, reservation):
        assert answer.headers["Content-Type"].startswith("application/json")
        assert floats_in(answer.body) == []


async def test_room_listing_filters_by_status_and_type_sorted_by_number(
    ask: Any, processed: ProcessedEvents, publishers: dict[System, HotelEventPublisher]
) -> None:
    hotel = new_hotel_id()
    await _publish(publishers, processed, hotel,
                   _room("R-a", "1010", "TWN", "vacant_clean"),
                   _room("R-b", "205", "TWN", "out_of_order"),
                   _room("R-c", "98", "DBL", "vacant_clean"),
                   _room("R-d", "301", "DBL", "out_of_order"))

    every = await _served(ask, f"/rooms/{hotel}", lambda answer: answer.status == 200
                          and answer.body["count"] == 4)
    assert [room["room_number"] for room in every.body["rooms"]] == ["98", "205", "301", "1010"]

    async def ids(query: str) -> list[str]:
        answer = await ask(f"/rooms/{hotel}?{query}")
        assert answer.status == 200, answer.body
        assert answer.body["count"] == len(answer.body["rooms"])
        return [room["room_id"] for room in answer.body["rooms"]]

    assert await ids("status=vacant_clean") == ["R-c", "R-a"]
    assert await ids("type=TWN") == ["R-b", "R-a"]
    assert await ids("status=out_of_order&type=DBL") == ["R-d"]
    assert await ids("status=occupied_clean") == []
    assert await ids("type=SUITE") == []

    bad = await ask(f"/rooms/{hotel}?status=sparkling")
    assert bad.status == 400 and bad.body["error"] == "bad_request"
    assert "status" in bad.body["detail"]

    nobody = await ask(f"/rooms/{new_hotel_id()}")
    assert nobody.status == 200 and nobody.body["rooms"] == []


async def test_availability_per_night_over_a_range(
    ask: Any, processed: ProcessedEvents, publishers: dict[System, HotelEventPublisher]
) -> None:
    hotel = new_hotel_id()
    await _publish(publishers, processed, hotel,
                   _room("R1", "101", "DBL", "vacant_clean"),
                   _room("R2", "102", "DBL", "out_of_order", night="2026-11-24"))
    await _publish(publishers, processed, hotel,
                   sample(EventKind.RESERVATION, "B1", room_type="DBL",
                          checkin_date="2026-11-23", checkout_date="2026-11-25"))
    expected = [
        {"date": "2026-11-22", "in_house": 2, "sold": 0, "out_of_order": 0, "free": 2},
        {"date": "2026-11-23", "in_house": 2, "sold": 1, "out_of_order": 0, "free": 1},
        {"date": "2026-11-24", "in_house": 2, "sold": 1, "out_of_order": 1, "free": 0},
        {"date": "2026-11-25", "in_house": 2, "sold": 0, "out_of_order": 0, "free": 2},
    ]
    path = f"/availability/{hotel}/DBL?from=2026-11-22&to=2026-11-25"
    # The mirror table follows the hotel's state log a moment after the event: poll.
    answer = await _served(ask, path, lambda answer: answer.status == 200
                           and answer.body["nights"] == expected)
    assert answer.body["hotel_id"] == hotel and answer.body["room_type"] == "DBL"
    assert (answer.body["from"], answer.body["to"]) == ("2026-11-22", "2026-11-25")
    assert floats_in(answer.body) == []

    one = await ask(f"/availability/{hotel}/DBL?from=2026-11-24&to=2026-11-24")
    assert one.body["nights"] == [expected[2]]


@pytest.mark.parametrize(("path", "named"), [
    ("/rooms/{hotel}/NOPE", "room NOPE"),
    ("/customers/{hotel}/NOPE", "customer NOPE"),
    ("/reservations/{hotel}/NOPE", "reservation NOPE"),
    ("/availability/{hotel}/NOPE?from=2026-11-22&to=2026-11-25", "room type NOPE"),
])
async def test_unknown_ids_answer_404_naming_what_is_missing(
    ask: Any, path: str, named: str
) -> None:
    hotel = new_hotel_id()
    answer = await ask(path.format(hotel=hotel))
    assert answer.status == 404
    assert answer.body["error"] == "not_found"
    assert named in answer.body["detail"] and hotel in answer.body["detail"]


@pytest.mark.parametrize(("query", "parameter"), [
    ("from=2026-11-22", "to"),
    ("to=2026-11-22", "from"),
    ("from=2026-02-30&to=2026-03-02", "from"),
    ("from=2026-11-22&to=tomorrow", "to"),
    ("from=22/11/2026&to=2026-11-25", "from"),
    ("from=2026-11-25&to=2026-11-22", "to"),
    ("from=2026-01-01&to=2027-01-02", "from"),
])
async def test_bad_dates_answer_400_naming_the_parameter(
    ask: Any, query: str, parameter: str
) -> None:
    answer = await ask(f"/availability/{new_hotel_id()}/DBL?{query}")
    assert answer.status == 400
    assert answer.body["error"] == "bad_request"
    assert f"'{parameter}'" in answer.body["detail"]


async def test_a_year_of_nights_is_allowed(ask: Any) -> None:
    answer = await ask(f"/availability/{new_hotel_id()}/DBL?from=2026-01-01&to=2027-01-01")
    assert answer.status == 404  # 366 nights pass validation; the room type is unknown


async def test_health_and_metrics(ask: Any, hub_env: HubSettings) -> None:
    health = await ask("/health")  # with credentials: the detail too
    assert health.status == 200 and health.body["status"] == "serving"
    every = list(range(hub_env.topic_partitions))
    assert health.body["active_partitions"]["room_to_state"] == every

    metrics = await ask("/metrics")
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# HELP hotelhub_events_consumed" in metrics.body


async def test_room_numbers_of_any_script_list_without_error(
    ask: Any, processed: ProcessedEvents, publishers: dict[System, HotelEventPublisher]
) -> None:
    hotel = new_hotel_id()
    await _publish(publishers, processed, hotel,
                   _room("R-sup", "²", "TWN", "vacant_clean"),
                   _room("R-ara", "٣٠١", "TWN", "vacant_clean"),
                   _room("R-lat", "12", "TWN", "vacant_clean"))
    listing = await _served(ask, f"/rooms/{hotel}", lambda answer: answer.status != 200
                            or answer.body["count"] == 3)
    assert listing.status == 200
    # Decimal digits of any script sort as numbers (12 before ٣٠١, 301); '²' is no digit.
    assert [room["room_number"] for room in listing.body["rooms"]] == ["12", "٣٠١", "²"]
