"""The live state on the real broker: a scripted day, every refusal rule, redelivery."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from streams.kinds import EventKind, System
from streams.models import CheckinCheckoutAction, HotelEvent, RefusalReason
from streams.publisher import HotelEventPublisher
from streams.rules import derived_id
from streams.settings import HubSettings
from streams.simulation import hotel_day
from streams.state import (
    AvailabilityState,
    CustomerState,
    ReservationState,
    RoomState,
    table_key,
)
from tests.support.collector import ProcessedEvents, Refusals, eventually
from tests.support.events import sample
from tests.support.replay import predict
from tests.support.tables import HubTables

pytestmark = pytest.mark.integration

Publishers = dict[System, HotelEventPublisher]


def key(hotel_id: str, entity: str) -> bytes:
    return table_key(hotel_id, entity).encode()


def snapshot(tables: HubTables, hotel_id: str, rooms: list[str], customers: list[str],
             stays: list[str], room_types: list[str]) -> dict[str, Any]:
    """Every table value of these entities, as stored."""
    return {
        "rooms": [tables.rooms.get(key(hotel_id, r)) for r in rooms],
        "customers": [tables.customers.get(key(hotel_id, c)) for c in customers],
        "stays": [tables.stays.get(key(hotel_id, s)) for s in stays],
        "availability": [tables.availability.get(key(hotel_id, t)) for t in room_types],
    }


def availability_matches(tables: HubTables, hotel: str, expected: dict[str, Any]) -> bool:
    """Does the availability table hold what the replay predicts, for every type and night?"""
    for (room_type, night), counts in expected["availability"].items():
        state = tables.read(tables.availability, key(hotel, room_type), AvailabilityState)
        if state is None:
            return False
        actual = state.night(date.fromisoformat(night))
        if {name: actual[name] for name in counts} != counts:
            return False
    return True


async def send_all(publishers: Publishers, items: list[tuple[System, dict[str, Any]]]
                   ) -> list[HotelEvent]:
    events = []
    for system, document in items:
        event = publishers[system].build(document)
        await publishers[system].send(event)
        events.append(event)
    return events


def derived_room_events(events: list[HotelEvent]) -> list[uuid.UUID]:
    moves = (CheckinCheckoutAction.CHECKED_IN, CheckinCheckoutAction.CHECKED_OUT)
    return [derived_id(event.event_id, "room-status") for event in events
            if event.type == EventKind.CHECKIN_CHECKOUT and event.action in moves]


async def test_a_scripted_day_leaves_the_tables_as_a_replay_predicts(
    hub_env: HubSettings, processed: ProcessedEvents, publishers: Publishers, tables: HubTables
) -> None:
    hotel = f"HTL-{uuid.uuid4().hex[:6]}"
    day = hotel_day(day=date(2026, 11, 23), hotel_id=hotel, timezone=hub_env.timezone)
    events = await send_all(publishers, [(item.system, item.document) for item in day])
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

    await eventually(lambda: availability_matches(tables, hotel, expected), timeout_s=60)


def scenario(name: str, hotel: str, tables: HubTables
             ) -> tuple[list[tuple[System, dict[str, Any]]], tuple[System, dict[str, Any]],
                        bytes, Any]:
    """(setup events, the refused event, the table key it targets, that table)."""
    entity = f"{name}-{uuid.uuid4().hex[:6]}"

    def doc(kind: EventKind, action: str, system: System | None = None,
            **data: Any) -> tuple[System, dict[str, Any]]:
        default, document = sample(kind, entity, **data)
        return system or default, {**document, "action": action, "hotel_id": hotel}

    stays = tables.stays
    if name == "stale-booking":
        return ([doc(EventKind.RESERVATION, "updated", version=5)],
                doc(EventKind.RESERVATION, "cancelled", version=4, status="cancelled"),
                key(hotel, entity), stays)
    if name == "checkout-before-checkin":
        return ([doc(EventKind.RESERVATION, "confirmed")],
                doc(EventKind.CHECKIN_CHECKOUT, "checked_out"), key(hotel, entity), stays)
    if name == "checkin-of-cancelled":
        return ([doc(EventKind.RESERVATION, "cancelled", status="cancelled")],
                doc(EventKind.CHECKIN_CHECKOUT, "checked_in"), key(hotel, entity), stays)
    if name == "reopen-checked-out":
        return ([doc(EventKind.RESERVATION, "checked_out", status="checked_out")],
                doc(EventKind.RESERVATION, "confirmed", version=2), key(hotel, entity), stays)
    if name == "stale-room":
        return ([doc(EventKind.ROOM, "status_changed", version=3)],
                doc(EventKind.ROOM, "status_changed", version=2, status="vacant_dirty"),
                key(hotel, entity), tables.rooms)
    customers = tables.customers
    member = doc(EventKind.CUSTOMER, "created", version=1)
    if name == "pms-not-allowed":
        return ([doc(EventKind.CUSTOMER, "created", version=1, updatable_by_pms=False)],
                doc(EventKind.CUSTOMER, "updated", System.HOTEL_PMS, version=2,
                    email="x@example.com", updated_fields=["email"]), key(hotel, entity),
                customers)
    if name == "pms-points":
        return ([member], doc(EventKind.CUSTOMER, "updated", System.HOTEL_PMS, version=2,
                              total_points=999999, updated_fields=["total_points"]),
                key(hotel, entity), customers)
    if name == "pms-name":
        return ([member], doc(EventKind.CUSTOMER, "updated", System.HOTEL_PMS, version=2,
                              name="Someone Else", updated_fields=["name"]),
                key(hotel, entity), customers)
    if name == "pms-creates-customer":
        return ([], doc(EventKind.CUSTOMER, "updated", System.HOTEL_PMS, version=1,
                         updated_fields=["email"]), key(hotel, entity), customers)
    raise AssertionError(name)


@pytest.mark.parametrize(("name", "reason"), [
    ("stale-booking", RefusalReason.STALE_VERSION),
    ("checkout-before-checkin", RefusalReason.ILLEGAL_TRANSITION),
    ("checkin-of-cancelled", RefusalReason.ILLEGAL_TRANSITION),
    ("reopen-checked-out", RefusalReason.ILLEGAL_TRANSITION),
    ("stale-room", RefusalReason.STALE_VERSION),
    ("pms-not-allowed", RefusalReason.NOT_UPDATABLE_BY_PMS),
    ("pms-points", RefusalReason.OWNER_ONLY),
    ("pms-name", RefusalReason.FIELD_NOT_ALLOWED),
    ("pms-creates-customer", RefusalReason.UNKNOWN_ENTITY),
])
async def test_each_rule_refuses_with_a_published_reason_and_unchanged_state(
    name: str, reason: RefusalReason, processed: ProcessedEvents, publishers: Publishers,
    refusals: Refusals, tables: HubTables,
) -> None:
    hotel = f"HTL-{uuid.uuid4().hex[:6]}"
    setup, offending, table_key_, table = scenario(name, hotel, tables)
    before_events = await send_all(publishers, setup)
    await processed.wait_for(e.event_id for e in before_events)
    before = table.get(table_key_)

    (refused,) = await send_all(publishers, [offending])
    refusal = await refusals.wait_for(refused.event_id)
    await processed.wait_for([refused.event_id])

    assert refusal.reason_code is reason
    assert refusal.hotel_id == hotel and refusal.updated_by_system == refused.updated_by_system
    assert refusal.reason
    assert table.get(table_key_) == before


async def test_redelivering_the_same_events_changes_nothing(
    processed: ProcessedEvents, publishers: Publishers, refusals: Refusals, tables: HubTables
) -> None:
    hotel = f"HTL-{uuid.uuid4().hex[:6]}"
    day = hotel_day(day=date(2026, 11, 24), hotel_id=hotel, timezone="Asia/Tokyo", rooms=12,
                    customers=12, seed=11)
    events = [publishers[item.system].build(item.document) for item in day]
    for event, item in zip(events, day, strict=True):
        await publishers[item.system].send(event)
    await processed.wait_for([e.event_id for e in events] + derived_room_events(events))
    expected = predict([event.model_dump(mode="json") for event in events])
    entities = (list(expected["rooms"]), list(expected["customers"]), list(expected["stays"]),
                list(expected["in_house"]))
    # Availability follows its deltas a little later: snapshot once it is complete.
    await eventually(lambda: availability_matches(tables, hotel, expected))
    first = snapshot(tables, hotel, *entities)

    for event, item in zip(events, day, strict=True):
        await publishers[item.system].send(event)  # the same event ids, again
    await processed.wait_for([e.event_id for e in events], times=2)

    assert snapshot(tables, hotel, *entities) == first
    assert not [e for e in events if str(e.event_id) in refusals.by_event]
