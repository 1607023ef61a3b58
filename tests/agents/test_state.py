"""The live state on the real broker: a scripted day, every rule, redelivery.

Each rule is shown from outside: the offending event's refusal arrives on
`hotel.refusals` and the state answered over HTTP is what it was before.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from streams.core.kinds import EventKind, System
from streams.core.models import CheckinCheckoutAction, HotelEvent, RefusalReason
from streams.core.rules import derived_id
from streams.core.simulation import hotel_day
from streams.core.state import (
    AvailabilityState,
    CustomerState,
    ReservationState,
    RoomState,
    table_key,
)
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from tests.agents.conftest import ALLOWANCE_HOTEL
from tests.support.collector import ProcessedEvents, Refusals
from tests.support.events import sample
from tests.support.replay import predict
from tests.support.tables import HubTables

pytestmark = pytest.mark.integration

Publishers = dict[System, HotelEventPublisher]
Doc = tuple[System, dict[str, Any]]


def key(hotel_id: str, entity: str) -> bytes:
    return table_key(hotel_id, entity).encode()


def new_hotel() -> str:
    return f"HTL-{uuid.uuid4().hex[:6]}"


def snapshot(tables: HubTables, hotel_id: str, rooms: list[str], customers: list[str],
             stays: list[str], room_types: list[str]) -> dict[str, Any]:
    """Every state of these entities, as committed."""
    return {
        "rooms": [tables.rooms.get(key(hotel_id, r)) for r in rooms],
        "customers": [tables.customers.get(key(hotel_id, c)) for c in customers],
        "stays": [tables.stays.get(key(hotel_id, s)) for s in stays],
        "availability": [tables.availability.get(key(hotel_id, t)) for t in room_types],
    }


def availability_matches(tables: HubTables, hotel: str, expected: dict[str, Any]) -> bool:
    """Does the availability hold what the replay predicts, for every type and night?"""
    for (room_type, night), counts in expected["availability"].items():
        state = tables.read(tables.availability, key(hotel, room_type), AvailabilityState)
        if state is None:
            return False
        actual = state.night(date.fromisoformat(night))
        if {name: actual[name] for name in counts} != counts:
            return False
    return True


async def send_all(publishers: Publishers, items: list[Doc]) -> list[HotelEvent]:
    events = []
    for system, document in items:
        event = publishers[system].build(document)
        await publishers[system].send(event)
        events.append(event)
    return events


async def settle(publishers: Publishers, processed: ProcessedEvents, items: list[Doc]
                 ) -> list[HotelEvent]:
    """Publish and wait until the hub applied (or refused) every one and the query tables
    show it."""
    events = await send_all(publishers, items)
    await processed.wait_for(event.event_id for event in events)
    await HubTables.mirrored()
    return events


def derived_room_events(events: list[HotelEvent]) -> list[uuid.UUID]:
    moves = (CheckinCheckoutAction.CHECKED_IN, CheckinCheckoutAction.CHECKED_OUT)
    return [derived_id(event.event_id, "room-status") for event in events
            if event.type == EventKind.CHECKIN_CHECKOUT and event.action in moves]


def house_first(day: list[Any]) -> tuple[list[Doc], list[Doc]]:
    """Rooms and customers before everything else: events of different entities have no
    order across partitions, and a booking needs its room type to exist."""
    items = [(item.system, item.document) for item in day]
    first = next(i for i, (_, document) in enumerate(items)
                 if document["type"] not in ("room", "customer"))
    return items[:first], items[first:]


async def test_a_scripted_day_leaves_the_tables_as_a_replay_predicts(
    hub_env: HubSettings, processed: ProcessedEvents, publishers: Publishers, tables: HubTables
) -> None:
    hotel = new_hotel()
    house, day = house_first(hotel_day(day=date(2026, 11, 23), hotel_id=hotel,
                                       timezone=hub_env.timezone))
    events = await settle(publishers, processed, house)
    events += await send_all(publishers, day)
    await processed.wait_for([e.event_id for e in events] + derived_room_events(events))
    expected = predict([event.model_dump(mode="json") for event in events])

    for room_id, room in expected["rooms"].items():
        state = tables.read(tables.rooms, key(hotel, room_id), RoomState)
        assert state is not None, room_id
        assert (state.status, state.room_type, state.version, state.current_reservation_id) == (
            room["status"], room["room_type"], room["version"], room["current_reservation_id"]
        ), room_id
    for customer_id, customer in expected["customers"].items():
        state = tables.read(tables.customers, key(hotel, customer_id), CustomerState)
        assert state is not None
        assert state.model_dump(include=set(customer)) == customer, customer_id
    for reservation_id, stay in expected["stays"].items():
        state = tables.read(tables.stays, key(hotel, reservation_id), ReservationState)
        assert state is not None
        assert (state.status, state.version, state.room_type, state.room_number,
                state.total_amount) == (stay["status"], stay["version"], stay["room_type"],
                                        stay["room_number"], Decimal(stay["total_amount"]))
    assert availability_matches(tables, hotel, expected)


# --- one scenario per rule -------------------------------------------------------------------


@dataclass
class Scenario:
    """Events that set the scene, the event the rule refuses, and what must not change."""

    setup: list[list[Doc]]
    """Published batch after batch, each applied before the next is sent."""
    offending: Doc
    paths: list[str]
    tamper: Callable[[HotelEvent], HotelEvent] | None = None
    """Changes the built event past the publisher's own checks, as another client could."""
    hotel: str = field(default_factory=new_hotel)


def scenario(name: str) -> Scenario:
    entity = f"{name}-{uuid.uuid4().hex[:6]}"
    hotel = ALLOWANCE_HOTEL if name == "overbooked-past-allowance" else new_hotel()

    def doc(kind: EventKind, action: str, system: System | None = None, *,
            entity: str = entity, **data: Any) -> Doc:
        default, document = sample(kind, entity, **data)
        return system or default, {**document, "action": action, "hotel_id": hotel}

    def room(room_id: str, room_type: str = "DBL") -> Doc:
        return doc(EventKind.ROOM, "status_changed", entity=room_id, room_type=room_type,
                   status="vacant_clean", room_number=room_id[-3:], maintenance_notes=None,
                   version=1)

    house = [room(f"RM-{entity}-201"), room(f"RM-{entity}-202", "TWN")]
    booking = doc(EventKind.RESERVATION, "confirmed")
    stay = f"/reservations/{hotel}/{entity}"
    nights = f"/availability/{hotel}/DBL?from=2026-11-22&to=2026-11-26"
    check_in = doc(EventKind.CHECKIN_CHECKOUT, "checked_in", room_id=f"RM-{entity}-201")

    found: dict[str, Scenario] = {
        "stale-booking": Scenario(
            [house, [doc(EventKind.RESERVATION, "updated", version=5)]],
            doc(EventKind.RESERVATION, "cancelled", version=4, status="cancelled"),
            [stay, nights]),
        "checkout-before-checkin": Scenario(
            [house, [booking]],
            doc(EventKind.CHECKIN_CHECKOUT, "checked_out", room_id=f"RM-{entity}-201"),
            [stay, f"/rooms/{hotel}/RM-{entity}-201"]),
        "checkin-of-cancelled": Scenario(
            [house, [doc(EventKind.RESERVATION, "cancelled", status="cancelled")]],
            check_in, [stay, f"/rooms/{hotel}/RM-{entity}-201"]),
        "booking-says-checked-in": Scenario(
            [house, [booking]],
            doc(EventKind.RESERVATION, "checked_in", version=2, status="checked_in"),
            [stay, f"/rooms/{hotel}/RM-{entity}-201"]),
        "first-event-checked-in": Scenario(
            [house], doc(EventKind.RESERVATION, "created", status="checked_in"), [stay, nights]),
        "finished-stay-changes": Scenario(
            [house, [booking], [check_in],
             [doc(EventKind.CHECKIN_CHECKOUT, "checked_out", room_id=f"RM-{entity}-201")]],
            doc(EventKind.RESERVATION, "updated", version=2, status="checked_out",
                checkout_date="2026-11-26", total_amount="45000"),
            [stay, nights]),
        "stale-room": Scenario(
            [[doc(EventKind.ROOM, "status_changed", version=3)]],
            doc(EventKind.ROOM, "status_changed", version=2, status="vacant_dirty"),
            [f"/rooms/{hotel}/{entity}"]),
        "overbooked": Scenario(
            [house, [doc(EventKind.RESERVATION, "confirmed", entity=f"{entity}-first")]],
            booking, [stay, nights]),
        "overbooked-past-allowance": Scenario(
            [house, [doc(EventKind.RESERVATION, "confirmed", entity=f"{entity}-first")],
             [doc(EventKind.RESERVATION, "confirmed", entity=f"{entity}-allowed")]],
            booking, [stay, nights]),
        "unknown-room-type": Scenario(
            [house], doc(EventKind.RESERVATION, "created", room_type="STE"),
            [stay, nights, f"/availability/{hotel}/STE?from=2026-11-22&to=2026-11-26"]),
        "checkin-to-unknown-room": Scenario(
            [house, [booking]],
            doc(EventKind.CHECKIN_CHECKOUT, "checked_in", room_id="NO-SUCH-ROOM"),
            [stay, f"/rooms/{hotel}/NO-SUCH-ROOM"]),
        "stay-over-the-limit": Scenario(
            [house], booking, [stay, nights],
            tamper=lambda event: event.model_copy(update={"data": event.data.model_copy(
                update={"checkout_date": date(2028, 1, 1)})})),
    }
    member = doc(EventKind.CUSTOMER, "created", version=1)
    customer = f"/customers/{hotel}/{entity}"
    found |= {
        "pms-not-allowed": Scenario(
            [[doc(EventKind.CUSTOMER, "created", version=1, updatable_by_pms=False)]],
            doc(EventKind.CUSTOMER, "updated", System.HOTEL_PMS, version=2,
                email="x@example.com", updated_fields=["email"]), [customer]),
        "pms-points": Scenario(
            [[member]], doc(EventKind.CUSTOMER, "updated", System.HOTEL_PMS, version=2,
                            total_points=999999, updated_fields=["total_points"]), [customer]),
        "pms-name": Scenario(
            [[member]], doc(EventKind.CUSTOMER, "updated", System.HOTEL_PMS, version=2,
                            name="Someone Else", updated_fields=["name"]), [customer]),
        "pms-creates-customer": Scenario(
            [], doc(EventKind.CUSTOMER, "updated", System.HOTEL_PMS, version=1,
                    updated_fields=["email"]), [customer]),
    }
    chosen = found[name]
    chosen.hotel = hotel
    return chosen


@pytest.mark.parametrize(("name", "reason", "says"), [
    ("stale-booking", RefusalReason.STALE_VERSION, "not newer than version 5"),
    ("checkout-before-checkin", RefusalReason.ILLEGAL_TRANSITION, "confirmed stay"),
    ("checkin-of-cancelled", RefusalReason.ILLEGAL_TRANSITION, "cancelled stay"),
    ("booking-says-checked-in", RefusalReason.ILLEGAL_TRANSITION, "front desk"),
    ("first-event-checked-in", RefusalReason.ILLEGAL_TRANSITION, "front desk"),
    ("finished-stay-changes", RefusalReason.ILLEGAL_TRANSITION, "history"),
    ("stale-room", RefusalReason.STALE_VERSION, "not newer than version 3"),
    ("overbooked", RefusalReason.OVERBOOKED, "2026-11-23, 2026-11-24"),
    ("overbooked-past-allowance", RefusalReason.OVERBOOKED, "allowance 1"),
    ("unknown-room-type", RefusalReason.UNKNOWN_ENTITY, "no rooms of type STE"),
    ("checkin-to-unknown-room", RefusalReason.UNKNOWN_ENTITY, "NO-SUCH-ROOM"),
    ("stay-over-the-limit", RefusalReason.INVALID_VALUE, "data.checkout_date"),
    ("pms-not-allowed", RefusalReason.NOT_UPDATABLE_BY_PMS, "does not allow"),
    ("pms-points", RefusalReason.OWNER_ONLY, "total_points"),
    ("pms-name", RefusalReason.FIELD_NOT_ALLOWED, "name"),
    ("pms-creates-customer", RefusalReason.UNKNOWN_ENTITY, "not known"),
])
async def test_each_rule_refuses_with_a_published_reason_and_unchanged_state(
    name: str, reason: RefusalReason, says: str, processed: ProcessedEvents,
    publishers: Publishers, refusals: Refusals, ask: Any,
) -> None:
    case = scenario(name)
    for batch in case.setup:
        applied = await settle(publishers, processed, batch)
        assert not [e for e in applied if str(e.event_id) in refusals.by_event], name
    before = [(answer.status, answer.body) for answer in [await ask(p) for p in case.paths]]

    system, document = case.offending
    refused = publishers[system].build(document)
    if case.tamper is not None:
        refused = case.tamper(refused)
    await publishers[system].send(refused)
    refusal = await refusals.wait_for(refused.event_id)
    await processed.wait_for([refused.event_id])

    assert refusal.reason_code is reason, refusal.reason
    assert says in refusal.reason
    assert refusal.hotel_id == case.hotel
    assert refusal.updated_by_system == refused.updated_by_system
    after = [(answer.status, answer.body) for answer in [await ask(p) for p in case.paths]]
    assert after == before


# --- rules that change state rather than refuse ------------------------------------------


def _room(hotel: str, room_id: str, room_type: str = "DBL") -> Doc:
    system, document = sample(EventKind.ROOM, room_id, room_type=room_type,
                              status="vacant_clean", maintenance_notes=None, version=1)
    return system, {**document, "action": "status_changed", "hotel_id": hotel}


def _stay(hotel: str, reservation: str, **data: Any) -> Doc:
    system, document = sample(EventKind.RESERVATION, reservation, **data)
    return system, {**document, "action": "confirmed", "hotel_id": hotel}


def _move(hotel: str, reservation: str, action: str, room_id: str, **data: Any) -> Doc:
    system, document = sample(EventKind.CHECKIN_CHECKOUT, reservation, room_id=room_id,
                              **data)
    return system, {**document, "action": action, "hotel_id": hotel}


async def test_an_early_departure_frees_the_nights_not_stayed(
    processed: ProcessedEvents, publishers: Publishers, ask: Any
) -> None:
    hotel = new_hotel()
    await settle(publishers, processed, [_room(hotel, "RM-1")])
    await settle(publishers, processed, [_stay(hotel, "B1", checkin_date="2026-11-23",
                                               checkout_date="2026-11-26")])
    await settle(publishers, processed, [_move(hotel, "B1", "checked_in", "RM-1")])
    await settle(publishers, processed, [_move(
        hotel, "B1", "checked_out", "RM-1", actual_checkout_time="2026-11-24T09:30:00+09:00")])

    answer = await ask(f"/availability/{hotel}/DBL?from=2026-11-23&to=2026-11-25")
    assert [night["sold"] for night in answer.body["nights"]] == [1, 0, 0]
    stay = await ask(f"/reservations/{hotel}/B1")
    assert stay.body["status"] == "checked_out" and stay.body["departure_date"] == "2026-11-24"


async def test_a_late_check_out_never_vacates_the_next_guests_room(
    processed: ProcessedEvents, publishers: Publishers, ask: Any
) -> None:
    hotel = new_hotel()
    await settle(publishers, processed, [_room(hotel, "RM-1"), _room(hotel, "RM-2")])
    await settle(publishers, processed, [
        _stay(hotel, "B-early", checkin_date="2026-11-22", checkout_date="2026-11-23"),
        _stay(hotel, "B-next", checkin_date="2026-11-23", checkout_date="2026-11-24")])
    await settle(publishers, processed, [_move(
        hotel, "B-early", "checked_in", "RM-1", actual_checkin_time="2026-11-22T15:00:00+09:00")])
    await settle(publishers, processed, [_move(
        hotel, "B-next", "checked_in", "RM-1", actual_checkin_time="2026-11-23T14:00:00+09:00")])
    # The first guest's check-out reaches the hub only now.
    await settle(publishers, processed, [_move(
        hotel, "B-early", "checked_out", "RM-1",
        actual_checkout_time="2026-11-23T10:00:00+09:00")])

    room = await ask(f"/rooms/{hotel}/RM-1")
    assert room.body["status"] == "occupied_clean"
    assert room.body["current_reservation_id"] == "B-next"
    assert (await ask(f"/reservations/{hotel}/B-early")).body["status"] == "checked_out"


async def test_one_systems_versions_never_lock_out_anothers(
    processed: ProcessedEvents, publishers: Publishers, refusals: Refusals, ask: Any
) -> None:
    hotel = new_hotel()

    def customer(system: System, action: str, version: int, **data: Any) -> Doc:
        _, document = sample(EventKind.CUSTOMER, "C-1", version=version, **data)
        return system, {**document, "action": action, "hotel_id": hotel}

    events = await settle(publishers, processed, [
        customer(System.HOTEL_MEMBER, "created", 1),
        customer(System.HOTEL_PMS, "updated", 2**62, email="front@example.com",
                 updated_fields=["email"]),
        customer(System.HOTEL_MEMBER, "points_changed", 2, total_points=5000),
    ])
    assert not [e for e in events if str(e.event_id) in refusals.by_event]
    answer = await ask(f"/customers/{hotel}/C-1")
    assert answer.body["email"] == "front@example.com" and answer.body["total_points"] == 5000
    assert answer.body["versions"] == {"hotel-member": 2, "hotel-pms": 2**62}


async def test_ids_that_contain_the_key_separator_stay_apart(
    processed: ProcessedEvents, publishers: Publishers, ask: Any
) -> None:
    hotel = new_hotel()
    await settle(publishers, processed, [_room(hotel, "A:1"), _room(hotel, "A")])
    one, other = await ask(f"/rooms/{hotel}/A:1"), await ask(f"/rooms/{hotel}/A")
    assert (one.body["room_id"], other.body["room_id"]) == ("A:1", "A")
    listing = await ask(f"/rooms/{hotel}")
    assert sorted(room["room_id"] for room in listing.body["rooms"]) == ["A", "A:1"]


async def test_redelivering_the_same_events_changes_nothing(
    processed: ProcessedEvents, publishers: Publishers, refusals: Refusals, tables: HubTables
) -> None:
    hotel = new_hotel()
    house, rest = house_first(hotel_day(day=date(2026, 11, 24), hotel_id=hotel,
                                        timezone="Asia/Tokyo", rooms=12, customers=12,
                                        seed=11))
    events = await settle(publishers, processed, house)
    events += await send_all(publishers, rest)
    await processed.wait_for([e.event_id for e in events] + derived_room_events(events))
    expected = predict([event.model_dump(mode="json") for event in events])
    entities = (list(expected["rooms"]), list(expected["customers"]), list(expected["stays"]),
                list(expected["in_house"]))
    assert availability_matches(tables, hotel, expected)
    first = snapshot(tables, hotel, *entities)

    systems = {str(event.event_id): item[0] for event, item in zip(events, house + rest,
                                                                    strict=True)}
    for event in events:  # the same event ids, again
        await publishers[systems[str(event.event_id)]].send(event)
    await processed.wait_for([e.event_id for e in events], times=2)

    assert json.dumps(snapshot(tables, hotel, *entities), sort_keys=True) == json.dumps(
        first, sort_keys=True)
    assert not [e for e in events if str(e.event_id) in refusals.by_event]
