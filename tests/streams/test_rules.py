"""The hub's rules as pure functions: lifecycle, versions per system, ownership, history,
early departures, rooms ordered by when their status changed, redelivery."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.documents import build_event
from streams.core.kinds import EventKind, System
from streams.core.models import RefusalReason, ReservationStatus, RoomStatus
from streams.core.rules import (
    RuleSettings,
    apply_customer,
    apply_movement,
    apply_reservation,
    apply_room,
    held_nights,
    parse_allowance,
)
from streams.core.state import InventoryDelta, ReservationState, RoomState, apply_delta
from tests.support.events import sample

RULES = RuleSettings(timezone="Asia/Tokyo")
JST = timezone(timedelta(hours=9))
DAY = datetime(2026, 11, 23, 9, 0, tzinfo=JST)
NIGHT_1, NIGHT_2 = date(2026, 11, 23), date(2026, 11, 24)


def at(minutes: int) -> str:
    """An instant `minutes` after 09:00 on the day of arrival (JST)."""
    return (DAY + timedelta(minutes=minutes)).isoformat()


def event(kind: EventKind, entity: str = "B1", *, system: System | None = None,
          action: str | None = None, when: int | None = None, **data: Any) -> Any:
    default_system, document = sample(kind, entity, **data)
    if action:
        document["action"] = action
    if when is not None:
        document["occurred_at"] = at(when)
    return build_event(document, publisher=system or default_system, default_hotel_id="H1")


def booking(status: str = "confirmed", version: int = 1, *, system: System | None = None,
            **data: Any) -> Any:
    return event(EventKind.RESERVATION, status=status, version=version, system=system, **data)


def movement(action: str, when: int | None = None, **data: Any) -> Any:
    times = {"actual_checkin_time": "2026-11-23T15:00:00+09:00",
             "actual_checkout_time": "2026-11-25T10:00:00+09:00"}
    moment = {"checked_in": 6 * 60, "checked_out": 2 * 24 * 60 + 60}.get(action, 24 * 60)
    return event(EventKind.CHECKIN_CHECKOUT, action=action,
                 when=moment if when is None else when, **{**times, **data})


def room(status: str = "vacant_clean", version: int = 1, entity: str = "RM-201",
         when: int = -60, **data: Any) -> Any:
    return event(EventKind.ROOM, entity, status=status, version=version, when=when,
                 **{"room_number": "201", **data})


def known_room(entity: str = "RM-201", **data: Any) -> RoomState:
    state = apply_room(None, room(entity=entity, **data)).state
    assert state is not None
    return state


def booked(status: str = "confirmed", **data: Any) -> ReservationState:
    state = apply_reservation(None, booking(status, **data), RULES).state
    assert state is not None
    return state


def checked_in(**data: Any) -> ReservationState:
    state = apply_movement(booked(**data), known_room(), movement("checked_in"), RULES).state
    assert state is not None and state.status is ReservationStatus.CHECKED_IN
    return state


def checked_out(**data: Any) -> ReservationState:
    state = apply_movement(checked_in(**data), known_room(), movement("checked_out"), RULES).state
    assert state is not None and state.status is ReservationStatus.CHECKED_OUT
    return state


def no_show() -> ReservationState:
    state = apply_movement(booked(), None, movement("no_show"), RULES).state
    assert state is not None and state.status is ReservationStatus.NO_SHOW
    return state


def cancelled() -> ReservationState:
    state = apply_reservation(booked(), booking("cancelled", version=2), RULES).state
    assert state is not None and state.status is ReservationStatus.CANCELLED
    return state


# --- bookings ------------------------------------------------------------------------


def test_a_booking_holds_its_nights() -> None:
    outcome = apply_reservation(None, booking(), RULES)
    assert outcome.state is not None and outcome.state.status is ReservationStatus.CONFIRMED
    assert [delta.sold for delta in outcome.deltas] == [{NIGHT_1: 1, NIGHT_2: 1}]


def test_a_waitlisted_booking_holds_nothing_until_confirmed() -> None:
    waiting = apply_reservation(None, booking("waitlisted"), RULES)
    assert waiting.state is not None and not waiting.deltas
    confirmed = apply_reservation(waiting.state, booking(version=2), RULES)
    assert [delta.sold for delta in confirmed.deltas] == [{NIGHT_1: 1, NIGHT_2: 1}]


def test_changing_dates_moves_only_the_nights_that_change() -> None:
    outcome = apply_reservation(booked(), booking(version=2, checkin_date="2026-11-24",
                                                  checkout_date="2026-11-26"), RULES)
    assert [delta.sold for delta in outcome.deltas] == [
        {NIGHT_1: -1, date(2026, 11, 25): 1}]


def test_a_stale_version_is_refused_and_changes_nothing() -> None:
    state = apply_reservation(None, booking(version=5), RULES).state
    outcome = apply_reservation(state, booking(version=4, status="cancelled"), RULES)
    assert outcome.state is None and not outcome.deltas
    assert [r.reason_code for r in outcome.refusals] == [RefusalReason.STALE_VERSION]
    assert outcome.refusals[0].updated_by_system == "hotel-saas"


def test_each_system_orders_only_its_own_versions_of_a_booking() -> None:
    state = apply_reservation(None, booking(version=5), RULES).state
    member = apply_reservation(state, booking(version=1, system=System.HOTEL_MEMBER,
                                              total_amount="31000"), RULES)
    assert not member.refusals and member.state is not None
    assert member.state.versions == {"hotel-saas": 5, "hotel-member": 1}
    stale = apply_reservation(member.state, booking(version=5, total_amount="1"), RULES)
    assert [r.reason_code for r in stale.refusals] == [RefusalReason.STALE_VERSION]
    assert "version 5 from hotel-saas" in stale.refusals[0].reason


def test_a_redelivered_event_changes_nothing() -> None:
    first = booking()
    state = apply_reservation(None, first, RULES).state
    again = apply_reservation(state, first, RULES)
    assert again.duplicate and again.state is None and not again.refusals


@pytest.mark.parametrize("status", ["checked_in", "checked_out", "no_show"])
def test_a_booking_may_not_move_guests(status: str) -> None:
    first = apply_reservation(None, booking(status), RULES)
    assert first.state is None and not first.deltas
    assert [r.reason_code for r in first.refusals] == [RefusalReason.ILLEGAL_TRANSITION]
    assert "only the front desk moves guests" in first.refusals[0].reason
    update = apply_reservation(booked(), booking(status, version=2), RULES)
    assert update.state is None and not update.deltas
    assert [r.reason_code for r in update.refusals] == [RefusalReason.ILLEGAL_TRANSITION]


def test_a_booking_echoing_the_front_desks_status_is_taken() -> None:
    state = checked_in()
    outcome = apply_reservation(state, booking("checked_in", version=2, total_amount="31000"),
                                RULES)
    assert not outcome.refusals and outcome.state is not None
    assert outcome.state.status is ReservationStatus.CHECKED_IN
    assert outcome.state.total_amount == Decimal("31000")


@pytest.mark.parametrize(("finished", "after"), [
    (checked_out, "confirmed"), (cancelled, "confirmed"), (no_show, "tentative"),
    (cancelled, "checked_in"), (no_show, "checked_in"),
])
def test_a_finished_stay_is_not_reopened(finished: Any, after: str) -> None:
    state = finished()
    outcome = apply_reservation(state, booking(after, version=3), RULES)
    assert outcome.state is None and not outcome.deltas
    assert [r.reason_code for r in outcome.refusals] == [RefusalReason.ILLEGAL_TRANSITION]


@pytest.mark.parametrize("change", [
    {"total_amount": "1"}, {"checkout_date": "2026-11-26"}, {"checkin_date": "2026-11-22"},
    {"room_type": "TWN"}, {"currency": "USD"},
])
@pytest.mark.parametrize("finished", [checked_out, cancelled, no_show])
def test_a_finished_stays_dates_type_and_amount_are_history(finished: Any,
                                                             change: dict[str, Any]) -> None:
    state = finished()
    outcome = apply_reservation(state, booking(str(state.status), version=3, **change), RULES)
    assert outcome.state is None and not outcome.deltas
    assert [r.reason_code for r in outcome.refusals] == [RefusalReason.ILLEGAL_TRANSITION]
    assert f"a {state.status} stay is history" in outcome.refusals[0].reason
    assert next(iter(change)) in outcome.refusals[0].reason


def sent(event: Any, minutes: int) -> Any:
    """`event` as its publisher stamped it: `synced_at` `minutes` after 09:00 on arrival day."""
    return event.model_copy(update={"synced_at": DAY + timedelta(minutes=minutes)})


@pytest.mark.parametrize("finish", ["checked_out", "no_show", "cancelled"])
def test_booking_news_published_before_the_stay_ended_is_taken_and_keeps_it_finished(
        finish: str) -> None:
    stay: ReservationState | None = booked()
    if finish == "cancelled":
        stay = apply_reservation(stay, sent(booking("cancelled", version=2), 60), RULES).state
    else:
        stay = apply_movement(checked_in() if finish == "checked_out" else stay, known_room(),
                              sent(movement(finish), 60), RULES).state
    assert stay is not None and stay.finished_at == DAY + timedelta(minutes=60)
    news = apply_reservation(stay, sent(booking("guaranteed", version=3, total_amount="1"), 59),
                             RULES)
    assert not news.refusals and news.state is not None
    assert news.state.status is ReservationStatus(finish)
    assert news.state.total_amount == Decimal("1")
    assert news.state.finished_at == stay.finished_at
    late = apply_reservation(stay, sent(booking("guaranteed", version=3, total_amount="1"), 60),
                             RULES)
    assert [r.reason_code for r in late.refusals] == [RefusalReason.ILLEGAL_TRANSITION]


def test_a_finished_stay_still_takes_what_is_not_history() -> None:
    state = checked_out()
    outcome = apply_reservation(state, booking("checked_out", version=3, customer_id="C9"),
                                RULES)
    assert not outcome.refusals and outcome.state is not None
    assert outcome.state.customer_id == "C9" and not outcome.deltas


# --- check-in, check-out, no-show ----------------------------------------------------


def test_check_in_of_a_cancelled_stay_is_refused() -> None:
    outcome = apply_movement(cancelled(), known_room(), movement("checked_in"), RULES)
    assert outcome.state is None and not outcome.room_events
    assert outcome.refusals[0].reason_code is RefusalReason.ILLEGAL_TRANSITION


def test_check_out_before_check_in_is_refused() -> None:
    outcome = apply_movement(booked(), known_room(), movement("checked_out"), RULES)
    assert outcome.refusals[0].reason == "cannot record checked_out for a confirmed stay"


def test_only_the_front_desk_moves_guests() -> None:
    move = movement("checked_in")
    from_saas = move.model_copy(update={"updated_by_system": System.HOTEL_SAAS.value})
    outcome = apply_movement(booked(), known_room(), from_saas, RULES)
    assert outcome.state is None and not outcome.room_events
    assert [r.reason_code for r in outcome.refusals] == [RefusalReason.OWNER_ONLY]
    assert outcome.refusals[0].updated_by_system == "hotel-saas"


def test_check_in_and_out_move_the_room() -> None:
    checked_in = apply_movement(booked(), known_room(), movement("checked_in"), RULES)
    assert checked_in.state is not None
    assert checked_in.state.status is ReservationStatus.CHECKED_IN
    (occupied,) = checked_in.room_events
    assert occupied.data.status is RoomStatus.OCCUPIED_CLEAN
    assert occupied.data.reservation_id == "B1"
    assert occupied.updated_by_system == "hotel-hub" and occupied.data.room_id == "RM-201"
    assert occupied.data.availability_date == NIGHT_1
    room_now = apply_room(known_room(), occupied).state
    out = apply_movement(checked_in.state, room_now, movement("checked_out"), RULES)
    assert out.room_events[0].data.status is RoomStatus.VACANT_DIRTY
    assert not out.deltas  # left on the day booked: the nights stay sold


def test_a_check_in_to_a_room_the_hub_has_never_seen_is_refused() -> None:
    outcome = apply_movement(booked(), None, movement("checked_in", room_id="RM-999"), RULES)
    assert outcome.state is None and not outcome.room_events
    assert [r.reason_code for r in outcome.refusals] == [RefusalReason.UNKNOWN_ENTITY]
    assert "RM-999" in outcome.refusals[0].reason


def test_an_early_departure_frees_the_nights_not_stayed() -> None:
    stay = checked_in(checkout_date="2026-11-26")
    assert len(held_nights(stay)) == 3
    outcome = apply_movement(stay, known_room(), movement(
        "checked_out", actual_checkout_time="2026-11-24T09:30:00+09:00"), RULES)
    assert outcome.state is not None and outcome.state.departure_date == NIGHT_2
    assert [delta.sold for delta in outcome.deltas] == [
        {NIGHT_2: -1, date(2026, 11, 25): -1}]
    assert list(held_nights(outcome.state)) == [("DBL", NIGHT_1)]


def test_the_departure_day_is_the_hotels_local_day() -> None:
    stay = checked_in(checkout_date="2026-11-26")
    # 23:30 UTC on the 24th is already the morning of the 25th in Tokyo.
    outcome = apply_movement(stay, known_room(), movement(
        "checked_out", actual_checkout_time="2026-11-24T23:30:00+00:00"), RULES)
    assert outcome.state is not None and outcome.state.departure_date == date(2026, 11, 25)
    assert [delta.sold for delta in outcome.deltas] == [{date(2026, 11, 25): -1}]


def test_a_late_departure_takes_no_extra_night() -> None:
    outcome = apply_movement(checked_in(), known_room(), movement(
        "checked_out", actual_checkout_time="2026-11-26T10:00:00+09:00"), RULES)
    assert outcome.state is not None and not outcome.deltas


def test_a_late_check_out_does_not_vacate_the_next_guests_room() -> None:
    next_guest = known_room().model_copy(update={
        "status": RoomStatus.OCCUPIED_CLEAN, "current_reservation_id": "B2"})
    outcome = apply_movement(checked_in(), next_guest, movement("checked_out"), RULES)
    assert outcome.state is not None
    assert outcome.state.status is ReservationStatus.CHECKED_OUT
    assert not outcome.room_events and not outcome.refusals


def test_derived_events_have_stable_ids() -> None:
    state, move = booked(), movement("checked_in")
    first = apply_movement(state, known_room(), move, RULES).room_events[0]
    again = apply_movement(state, known_room(), move, RULES).room_events[0]
    assert first == again


def test_a_movement_that_overtakes_its_booking_waits_for_it() -> None:
    move = movement("checked_in")
    parked = apply_movement(None, None, move, RULES)
    assert parked.state is not None and not parked.state.known and not parked.refusals
    assert not parked.room_events and not parked.deltas
    again = apply_movement(parked.state, None, move, RULES)
    assert again.duplicate and again.state is None
    outcome = apply_reservation(parked.state, booking(), RULES)
    assert outcome.state is not None
    assert outcome.state.status is ReservationStatus.CONFIRMED
    assert outcome.state.pending_movements == [] and outcome.released == [move]


def test_an_older_booking_update_after_check_in_keeps_the_stay_checked_in() -> None:
    state = apply_movement(booked("tentative"), known_room(), movement("checked_in"),
                           RULES).state
    outcome = apply_reservation(state, booking("confirmed", version=2,
                                               total_amount="31000"), RULES)
    assert not outcome.refusals and outcome.state is not None
    assert outcome.state.status is ReservationStatus.CHECKED_IN
    assert outcome.state.total_amount == Decimal("31000")


def test_a_resent_movement_is_recognised_however_long_ago() -> None:
    move = movement("checked_in")
    state = apply_movement(booked(), known_room(), move, RULES).state
    assert state is not None
    for version in range(2, 20):
        state = apply_reservation(state, booking("confirmed", version=version,
                                                 total_amount=str(30000 + version)), RULES).state
        assert state is not None
    again = apply_movement(state, known_room(), move, RULES)
    assert again.duplicate and again.state is None and not again.refusals


def test_no_show_releases_the_nights() -> None:
    outcome = apply_movement(booked(), None, movement("no_show"), RULES)
    assert [delta.sold for delta in outcome.deltas] == [{NIGHT_1: -1, NIGHT_2: -1}]
    assert not outcome.room_events


def test_cancellation_releases_the_nights() -> None:
    outcome = apply_reservation(booked(), booking("cancelled", version=2), RULES)
    assert [delta.sold for delta in outcome.deltas] == [{NIGHT_1: -1, NIGHT_2: -1}]


# --- rooms ---------------------------------------------------------------------------


def test_rooms_count_in_the_house_and_out_of_order() -> None:
    created = apply_room(None, room())
    availability = apply_delta(None, created.deltas[0])
    assert availability.in_house == 1
    broken = apply_room(created.state, room("out_of_order", 2, availability_date="2026-11-24"))
    availability = apply_delta(availability, broken.deltas[0])
    assert availability.night(NIGHT_2)["free"] == 0
    fixed = apply_room(broken.state, room("inspected", 3, availability_date="2026-11-24"))
    availability = apply_delta(availability, fixed.deltas[0])
    assert availability.night(NIGHT_2) == {
        "date": "2026-11-24", "in_house": 1, "sold": 0, "out_of_order": 0, "free": 1}


def test_a_room_changing_type_moves_between_counts() -> None:
    state = apply_room(None, room(room_type="TWN")).state
    outcome = apply_room(state, room(version=2, room_type="DBL"))
    assert {(d.room_type, d.in_house) for d in outcome.deltas} == {("TWN", -1), ("DBL", 1)}


def test_stale_room_events_are_refused_but_derived_ones_apply() -> None:
    state = apply_room(None, room(version=3)).state
    stale = apply_room(state, room("vacant_dirty", 2))
    assert stale.refusals[0].reason_code is RefusalReason.STALE_VERSION
    derived = apply_movement(booked(), state, movement("checked_in"), RULES).room_events[0]
    outcome = apply_room(state, derived)
    assert outcome.state is not None and outcome.state.version == 3
    assert outcome.state.status is RoomStatus.OCCUPIED_CLEAN
    assert outcome.state.current_reservation_id == "B1"


def test_a_derived_status_older_than_the_rooms_changes_nothing() -> None:
    later = known_room(status="out_of_order", when=8 * 60)  # 17:00, after the 15:00 check-in
    derived = apply_movement(booked(), later, movement("checked_in"), RULES).room_events[0]
    outcome = apply_room(later, derived)
    assert outcome.state is None and not outcome.deltas and not outcome.refusals


def test_an_older_check_in_names_the_guest_of_a_room_the_pms_says_is_occupied() -> None:
    later = known_room(status="occupied_dirty", when=10 * 60)  # 19:00, after the check-in
    derived = apply_movement(booked(), later, movement("checked_in"), RULES).room_events[0]
    outcome = apply_room(later, derived)
    assert outcome.state is not None and not outcome.deltas
    assert outcome.state.status is RoomStatus.OCCUPIED_DIRTY
    assert outcome.state.status_at == later.status_at
    assert outcome.state.current_reservation_id == "B1"


def test_a_derived_status_never_creates_a_room() -> None:
    derived = apply_movement(booked(), known_room(), movement("checked_in"), RULES).room_events[0]
    outcome = apply_room(None, derived)
    assert outcome.state is None and not outcome.deltas


def test_an_older_pms_status_keeps_the_newer_one_but_takes_the_other_fields() -> None:
    state = known_room()
    occupied = apply_room(state, apply_movement(booked(), state, movement("checked_in"),
                                                RULES).room_events[0]).state
    assert occupied is not None
    # Sent at 14:00, before the 15:00 check-in, delivered after it.
    older = room("vacant_clean", 2, when=5 * 60, base_price="18000",
                 maintenance_notes="new curtains")
    outcome = apply_room(occupied, older)
    assert outcome.state is not None and not outcome.refusals
    assert outcome.state.status is RoomStatus.OCCUPIED_CLEAN
    assert outcome.state.current_reservation_id == "B1"
    assert outcome.state.base_price == Decimal("18000")
    assert outcome.state.maintenance_notes == "new curtains"
    assert outcome.state.versions == {"hotel-pms": 2}


def test_out_of_order_nights_are_recorded_as_the_pms_reports_them() -> None:
    state = known_room()
    occupied = apply_room(state, apply_movement(booked(), state, movement("checked_in"),
                                                RULES).room_events[0]).state
    assert occupied is not None
    # Reported at 10:00 for the 25th, delivered after the 15:00 check-in.
    report = room("out_of_order", 2, when=60, availability_date="2026-11-25")
    outcome = apply_room(occupied, report)
    assert outcome.state is not None
    assert outcome.state.status is RoomStatus.OCCUPIED_CLEAN
    assert outcome.state.out_of_order_dates == [date(2026, 11, 25)]
    assert [delta.out_of_order for delta in outcome.deltas] == [{date(2026, 11, 25): 1}]
    # The hub's own statuses report no night in or out of order.
    out = apply_movement(checked_in(), outcome.state, movement("checked_out"), RULES)
    vacated = apply_room(outcome.state, out.room_events[0])
    assert vacated.state is not None and not vacated.deltas
    assert vacated.state.out_of_order_dates == [date(2026, 11, 25)]


def test_a_resent_room_event_changes_no_count() -> None:
    first = room()
    created = apply_room(None, first)
    again = apply_room(created.state, first)
    assert again.duplicate and again.state is None and not again.deltas


def test_deltas_add_up() -> None:
    """A delta is applied in the transaction of its cause, so apply_delta simply adds."""
    delta = InventoryDelta(hotel_id="H1", room_type="DBL", in_house=2,
                           sold={NIGHT_1: 1}, cause_event_id="e1")
    twice = apply_delta(apply_delta(None, delta), delta)
    assert twice.in_house == 4 and twice.free(NIGHT_1) == 2 and twice.free(NIGHT_2) == 4


# --- customers -----------------------------------------------------------------------


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


def test_a_pms_version_never_locks_out_the_member_system() -> None:
    state = apply_customer(None, customer(), RULES).state
    pms = apply_customer(state, customer(System.HOTEL_PMS, "updated", 2**62,
                                         email="pms@example.com",
                                         updated_fields=["email"]), RULES)
    assert not pms.refusals and pms.state is not None
    member = apply_customer(pms.state, customer(action="points_changed", version=2,
                                                total_points=1500, updated_fields=[]), RULES)
    assert not member.refusals and member.state is not None
    assert member.state.total_points == 1500 and member.state.email == "pms@example.com"
    assert member.state.versions == {"hotel-member": 2, "hotel-pms": 2**62}
    pms_again = apply_customer(member.state, customer(System.HOTEL_PMS, "updated", 2**62,
                                                      email="x@example.com",
                                                      updated_fields=["email"]), RULES)
    assert [r.reason_code for r in pms_again.refusals] == [RefusalReason.STALE_VERSION]


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


# --- overbooking allowance -----------------------------------------------------------


@pytest.mark.parametrize(("raw", "in_house", "rooms"), [
    ("2", 10, 2), (" 0 ", 10, 0), ("5%", 10, 0), ("5%", 40, 2), ("50%", 3, 1),
    ("12.5%", 16, 2), ("100%", 7, 7),
])
def test_an_allowance_is_a_count_or_a_share_rounded_down(raw: str, in_house: int,
                                                         rooms: int) -> None:
    assert parse_allowance(raw, in_house) == rooms


@pytest.mark.parametrize("raw", ["two", "%", "5%%", ""])
def test_an_allowance_that_is_neither_is_an_error(raw: str) -> None:
    with pytest.raises(ValueError, match="neither a count nor a percent"):
        parse_allowance(raw, 10)


def test_an_allowance_is_looked_up_by_hotel_then_type_with_wildcards() -> None:
    rules = RuleSettings(overbooking={"H1": {"DBL": "2", "*": "10%"}, "*": {"TWN": "1"}})
    assert rules.allowance("H1", "DBL", 10) == 2
    assert rules.allowance("H1", "STE", 30) == 3
    assert rules.allowance("H2", "TWN", 10) == 1
    assert rules.allowance("H2", "DBL", 10) == 0
    assert RuleSettings().allowance("H1", "DBL", 10) == 0


# --- changes made offline (issue 11) ---------------------------------------------------


def offline(made: Any) -> Any:
    return made.model_copy(update={"created_offline": True})


def test_an_offline_change_older_than_an_applied_change_is_a_conflict_not_applied() -> None:
    online = apply_reservation(None, booking(version=1, when=30), RULES).state
    stale = offline(booking("cancelled", version=1, system=System.HOTEL_PMS, when=10))
    outcome = apply_reservation(online, stale, RULES)
    assert outcome.state is None and not outcome.deltas
    [refusal] = outcome.refusals
    assert refusal.reason_code is RefusalReason.OFFLINE_CONFLICT and refusal.created_offline
    assert "from hotel-saas" in refusal.reason and "stands" in refusal.reason
    assert refusal.current_state is not None and '"confirmed"' in refusal.current_state


def test_the_same_change_made_online_is_applied_by_arrival() -> None:
    """Only a change made offline is held to the conflict rule: online, the order in which
    the hub receives changes decides, as before."""
    online = apply_reservation(None, booking(version=1, when=30), RULES).state
    late = booking("cancelled", version=1, system=System.HOTEL_PMS, when=10)
    outcome = apply_reservation(online, late, RULES)
    assert not outcome.refusals and outcome.state is not None
    assert outcome.state.status is ReservationStatus.CANCELLED


def test_an_offline_change_newer_than_everything_applied_is_applied() -> None:
    online = apply_reservation(None, booking(version=1, when=10), RULES).state
    newer = offline(booking("cancelled", version=1, system=System.HOTEL_PMS, when=30))
    outcome = apply_reservation(online, newer, RULES)
    assert not outcome.refusals and outcome.state is not None
    assert outcome.state.applied.updated_by == "hotel-pms"


def test_a_front_desks_own_offline_changes_synced_in_order_never_conflict() -> None:
    state = None
    for minute, status in ((5, "tentative"), (6, "confirmed"), (7, "guaranteed")):
        made = offline(booking(status, version=minute, system=System.HOTEL_PMS, when=minute))
        outcome = apply_reservation(state, made, RULES)
        assert not outcome.refusals, outcome.refusals
        state = outcome.state
    assert state is not None and state.status is ReservationStatus.GUARANTEED


def test_a_redelivered_offline_change_is_a_duplicate_not_a_conflict() -> None:
    made = offline(booking(version=1, system=System.HOTEL_PMS, when=10))
    state = apply_reservation(None, made, RULES).state
    newer = apply_reservation(state, booking(version=2, when=40), RULES).state
    again = apply_reservation(newer, made, RULES)
    assert again.duplicate and not again.refusals


def test_an_offline_room_status_older_than_a_check_in_does_not_overwrite_it() -> None:
    """The room was checked into at 15:00 (the hub's derived status); the PMS's offline
    housekeeping update made at 14:00 arrives afterwards and is a conflict."""
    stay = checked_in()
    room_after = apply_movement(booked(), known_room(), movement("checked_in"), RULES)
    derived = room_after.room_events[0]
    occupied = apply_room(known_room(), derived).state
    assert occupied is not None and stay.status is ReservationStatus.CHECKED_IN
    housekeeping = offline(room("vacant_clean", version=2, when=5 * 60))
    outcome = apply_room(occupied, housekeeping)
    assert [r.reason_code for r in outcome.refusals] == [RefusalReason.OFFLINE_CONFLICT]
    assert outcome.state is None
    assert "from hotel-hub" in outcome.refusals[0].reason


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 600),
                          st.sampled_from([System.HOTEL_PMS, System.HOTEL_SAAS,
                                           System.HOTEL_MEMBER])),
                min_size=1, max_size=12))
def test_no_offline_change_ever_overrides_a_newer_applied_one(
        changes: list[tuple[bool, int, System]]) -> None:
    """Any mix of online and offline booking changes, in any arrival order: an offline
    change is applied only when nothing applied before it happened later; it is otherwise
    refused as a conflict; an online change is never refused as one."""
    state = apply_reservation(None, booking(version=1, when=0), RULES).state
    versions: dict[System, int] = {}
    for made_offline, minute, system in changes:
        versions[system] = versions.get(system, 1) + 1
        change = booking(("confirmed", "guaranteed")[minute % 2], version=versions[system],
                         system=system, when=minute)
        if made_offline:
            change = offline(change)
        assert state is not None
        newest = state.applied.updated_at
        outcome = apply_reservation(state, change, RULES)
        codes = [refusal.reason_code for refusal in outcome.refusals]
        if made_offline and newest is not None and change.occurred_at < newest:
            assert codes == [RefusalReason.OFFLINE_CONFLICT] and outcome.state is None
        else:
            assert RefusalReason.OFFLINE_CONFLICT not in codes
        state = outcome.state or state
