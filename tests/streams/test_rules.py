"""The hub's rules as pure functions: lifecycle, versions, ownership, races, redelivery."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from streams.kinds import EventKind, System
from streams.models import RefusalReason, ReservationStatus, RoomStatus
from streams.publisher import build_event
from streams.rules import (
    RuleSettings,
    apply_customer,
    apply_movement,
    apply_reservation,
    apply_room,
)
from streams.state import apply_delta
from tests.support.events import sample

RULES = RuleSettings(timezone="Asia/Tokyo")


def event(kind: EventKind, entity: str = "B1", *, system: System | None = None,
          action: str | None = None, **data: Any) -> Any:
    default_system, document = sample(kind, entity, **data)
    if action:
        document["action"] = action
    return build_event(document, publisher=system or default_system, default_hotel_id="H1")


def booking(status: str = "confirmed", version: int = 1, **data: Any) -> Any:
    return event(EventKind.RESERVATION, status=status, version=version, **data)


def movement(action: str, **data: Any) -> Any:
    times = {"actual_checkin_time": "2026-11-23T15:00:00+09:00",
             "actual_checkout_time": "2026-11-25T10:00:00+09:00"}
    return event(EventKind.CHECKIN_CHECKOUT, action=action, **{**times, **data})


def test_a_booking_holds_its_nights() -> None:
    outcome = apply_reservation(None, booking(), RULES)
    assert outcome.state is not None and outcome.state.status is ReservationStatus.CONFIRMED
    assert [delta.sold for delta in outcome.deltas] == [
        {date(2026, 11, 23): 1, date(2026, 11, 24): 1}]


def test_a_stale_version_is_refused_and_changes_nothing() -> None:
    state = apply_reservation(None, booking(version=5), RULES).state
    outcome = apply_reservation(state, booking(version=4, status="cancelled"), RULES)
    assert outcome.state is None and not outcome.deltas
    assert [r.reason_code for r in outcome.refusals] == [RefusalReason.STALE_VERSION]
    assert outcome.refusals[0].updated_by_system == "hotel-saas"


def test_a_redelivered_event_changes_nothing() -> None:
    first = booking()
    state = apply_reservation(None, first, RULES).state
    again = apply_reservation(state, first, RULES)
    assert again.duplicate and again.state is None and not again.refusals


@pytest.mark.parametrize(("before", "after"), [
    ("checked_out", "confirmed"), ("cancelled", "confirmed"), ("no_show", "checked_in"),
])
def test_impossible_reservation_moves_are_refused(before: str, after: str) -> None:
    state = apply_reservation(None, booking(before), RULES).state
    outcome = apply_reservation(state, booking(after, version=2), RULES)
    assert outcome.state is None
    assert outcome.refusals[0].reason_code is RefusalReason.ILLEGAL_TRANSITION
    assert f"a {before} stay cannot become {after}" in outcome.refusals[0].reason


def test_check_in_of_a_cancelled_stay_is_refused() -> None:
    state = apply_reservation(None, booking("cancelled"), RULES).state
    outcome = apply_movement(state, movement("checked_in"), RULES)
    assert outcome.state is None and not outcome.room_events
    assert outcome.refusals[0].reason_code is RefusalReason.ILLEGAL_TRANSITION


def test_check_out_before_check_in_is_refused() -> None:
    state = apply_reservation(None, booking(), RULES).state
    outcome = apply_movement(state, movement("checked_out"), RULES)
    assert outcome.refusals[0].reason == "cannot record checked_out for a confirmed stay"


def test_check_in_and_out_move_the_room() -> None:
    state = apply_reservation(None, booking(), RULES).state
    checked_in = apply_movement(state, movement("checked_in"), RULES)
    assert checked_in.state is not None
    assert checked_in.state.status is ReservationStatus.CHECKED_IN
    (room,) = checked_in.room_events
    assert room.data.status is RoomStatus.OCCUPIED_CLEAN and room.data.reservation_id == "B1"
    assert room.updated_by_system == "hotel-hub" and room.data.room_id == "RM-201"
    assert room.data.availability_date == date(2026, 11, 23)
    out = apply_movement(checked_in.state, movement("checked_out"), RULES)
    assert out.room_events[0].data.status is RoomStatus.VACANT_DIRTY
    assert not out.deltas  # the nights stay sold


def test_derived_events_have_stable_ids() -> None:
    state = apply_reservation(None, booking(), RULES).state
    move = movement("checked_in")
    first = apply_movement(state, move, RULES).room_events[0]
    again = apply_movement(state, move, RULES).room_events[0]
    assert first == again


def test_a_movement_that_overtakes_its_booking_waits_for_it() -> None:
    move = movement("checked_in")
    parked = apply_movement(None, move, RULES)
    assert parked.state is not None and not parked.state.known and not parked.refusals
    outcome = apply_reservation(parked.state, booking(), RULES)
    assert outcome.state is not None
    assert outcome.state.status is ReservationStatus.CHECKED_IN
    assert outcome.state.pending_movements == [] and len(outcome.room_events) == 1


def test_an_older_booking_update_after_check_in_keeps_the_stay_checked_in() -> None:
    state = apply_reservation(None, booking("tentative"), RULES).state
    state = apply_movement(state, movement("checked_in"), RULES).state
    outcome = apply_reservation(state, booking("confirmed", version=2,
                                               total_amount="31000"), RULES)
    assert not outcome.refusals and outcome.state is not None
    assert outcome.state.status is ReservationStatus.CHECKED_IN
    assert outcome.state.total_amount == Decimal("31000")


def test_a_movement_the_booking_already_reported_is_not_refused() -> None:
    state = apply_reservation(None, booking(), RULES).state
    state = apply_reservation(state, booking("checked_in", version=2), RULES).state
    outcome = apply_movement(state, movement("checked_in"), RULES)
    assert not outcome.refusals and len(outcome.room_events) == 1


def test_no_show_releases_the_nights() -> None:
    state = apply_reservation(None, booking(), RULES).state
    outcome = apply_movement(state, movement("no_show"), RULES)
    assert [delta.sold for delta in outcome.deltas] == [
        {date(2026, 11, 23): -1, date(2026, 11, 24): -1}]
    assert not outcome.room_events


def room(status: str = "vacant_clean", version: int = 1, **data: Any) -> Any:
    return event(EventKind.ROOM, "RM-1", status=status, version=version, **data)


def test_rooms_count_in_the_house_and_out_of_order() -> None:
    created = apply_room(None, room())
    availability = apply_delta(None, created.deltas[0])
    assert availability.in_house == 1
    broken = apply_room(created.state, room("out_of_order", 2))
    availability = apply_delta(availability, broken.deltas[0])
    assert availability.night(date(2026, 11, 24))["free"] == 0
    fixed = apply_room(broken.state, room("inspected", 3))
    availability = apply_delta(availability, fixed.deltas[0])
    assert availability.night(date(2026, 11, 24)) == {
        "date": "2026-11-24", "in_house": 1, "sold": 0, "out_of_order": 0, "free": 1}


def test_a_room_changing_type_moves_between_counts() -> None:
    state = apply_room(None, room()).state
    outcome = apply_room(state, room(version=2, room_type="DBL"))
    assert {(d.room_type, d.in_house) for d in outcome.deltas} == {("TWN", -1), ("DBL", 1)}


def test_stale_room_events_are_refused_but_derived_ones_apply() -> None:
    state = apply_room(None, room(version=3)).state
    stale = apply_room(state, room("vacant_dirty", 2))
    assert stale.refusals[0].reason_code is RefusalReason.STALE_VERSION
    stay = apply_reservation(None, booking(), RULES).state
    derived = apply_movement(stay, movement("checked_in", room_id="RM-1"), RULES).room_events[0]
    outcome = apply_room(state, derived)
    assert outcome.state is not None and outcome.state.version == 3
    assert outcome.state.status is RoomStatus.OCCUPIED_CLEAN
    assert outcome.state.current_reservation_id == "B1"


def customer(system: System = System.HOTEL_MEMBER, action: str = "created", version: int = 1,
             **data: Any) -> Any:
    return event(EventKind.CUSTOMER, "C1", system=system, action=action, version=version, **data)


def test_members_changes_apply_with_their_sources() -> None:
    state = apply_customer(None, customer(), RULES).state
    assert state is not None and state.total_points == 1200
    outcome = apply_customer(state, customer(action="points_changed", version=2,
                                             total_points=1500, updated_fields=[]), RULES)
    assert outcome.state is not None and outcome.state.total_points == 1500
    assert outcome.state.field_sources["total_points"].version == 2
    assert outcome.state.field_sources["email"].version == 1


def test_pms_may_change_contact_fields_where_allowed() -> None:
    state = apply_customer(None, customer(), RULES).state
    outcome = apply_customer(state, customer(System.HOTEL_PMS, "updated", 2,
                                             email="new@example.com",
                                             updated_fields=["email"]), RULES)
    assert outcome.state is not None and outcome.state.email == "new@example.com"
    assert outcome.state.field_sources["email"].system == "hotel-pms"
    assert outcome.state.total_points == 1200


@pytest.mark.parametrize(("change", "code"), [
    ({"total_points": 9, "updated_fields": ["total_points"]}, RefusalReason.OWNER_ONLY),
    ({"rank_id": "platinum", "updated_fields": ["rank_id"]}, RefusalReason.OWNER_ONLY),
    ({"name": "X", "updated_fields": ["name"]}, RefusalReason.FIELD_NOT_ALLOWED),
    ({"updated_fields": ["passport"]}, RefusalReason.FIELD_NOT_ALLOWED),
])
def test_pms_changes_beyond_what_it_may_are_refused(change: dict[str, Any],
                                                     code: RefusalReason) -> None:
    state = apply_customer(None, customer(), RULES).state
    outcome = apply_customer(state, customer(System.HOTEL_PMS, "updated", 2, **change), RULES)
    assert outcome.state is None and outcome.refusals[0].reason_code is code


def test_pms_cannot_touch_a_customer_who_does_not_allow_it() -> None:
    state = apply_customer(None, customer(updatable_by_pms=False), RULES).state
    outcome = apply_customer(state, customer(System.HOTEL_PMS, "updated", 2,
                                             updated_fields=["email"]), RULES)
    assert outcome.refusals[0].reason_code is RefusalReason.NOT_UPDATABLE_BY_PMS


def test_pms_cannot_create_customers() -> None:
    outcome = apply_customer(None, customer(System.HOTEL_PMS, "updated"), RULES)
    assert outcome.refusals[0].reason_code is RefusalReason.UNKNOWN_ENTITY


def test_the_allowed_pms_fields_are_configurable() -> None:
    rules = RuleSettings(pms_customer_fields=frozenset({"email", "phone", "name"}))
    state = apply_customer(None, customer(), rules).state
    outcome = apply_customer(state, customer(System.HOTEL_PMS, "updated", 2, name="Y",
                                             updated_fields=["name"]), rules)
    assert outcome.state is not None and outcome.state.name == "Y"


def test_a_redelivered_delta_is_counted_once() -> None:
    delta = apply_room(None, room()).deltas[0]
    once = apply_delta(None, delta)
    assert apply_delta(once, delta) == once
