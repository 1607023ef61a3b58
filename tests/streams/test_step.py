"""The per-record step of a hotel partition (`streams.core.step.apply_event`) over a plain dict:
overbooking and its allowance, unknown room types, limits, releases of nights, rooms
the hub must know, late check-outs, versions per system, and silent resends."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from streams.core.documents import build_event
from streams.core.kinds import EventKind, System
from streams.core.limits import Limits
from streams.core.models import HotelEvent, RefusalReason, ReservationStatus, RoomStatus
from streams.core.rules import RuleSettings
from streams.core.state import AvailabilityState, ReservationState, RoomState
from streams.core.step import (
    AVAILABILITY,
    CUSTOMER,
    ROOM,
    STAY,
    WAITING,
    WAITING_ROOM_SIZE,
    Step,
    apply_event,
)
from tests.support.events import sample

JST = timezone(timedelta(hours=9))
START = datetime(2026, 11, 20, 9, 0, tzinfo=JST)
ROOMY = Limits(max_stay_nights=100_000, max_text_length=10**6, max_list_length=10**4)
"""Limits the publisher applies when building events the hub must refuse itself."""


def night(day: int) -> date:
    return date(2026, 11, day)


def clock(day: int, hour: int, minute: int = 0) -> str:
    return datetime(2026, 11, day, hour, minute, tzinfo=JST).isoformat()


class Hotel:
    """One hotel partition's state as the processor keeps it: a dict of (tag, key) -> state."""

    def __init__(self, rules: RuleSettings | None = None, hotel_id: str = "H1") -> None:
        # What arrives before its room or room type is refused at once unless a test waits.
        self.rules = rules or RuleSettings(order_grace_s=0)
        self.hotel_id = hotel_id
        self.state: dict[tuple[str, bytes], Any] = {}
        self.minutes = 0

    def apply(self, event: HotelEvent) -> Step:
        step = apply_event(event, lambda tag, key: self.state.get((tag, key)), self.rules)
        self.state.update(step.changes)
        return step

    def event(self, kind: EventKind, entity: str, *, system: System | None = None,
              action: str | None = None, when: str | None = None, sent: str | None = None,
              limits: Limits | None = None, **data: Any) -> Any:
        """A valid event; each one made later than the last unless `when` says otherwise, and
        published (`synced_at`, stamped by the publisher) a second after it happened unless
        `sent` says otherwise."""
        default_system, document = sample(kind, entity, **data)
        if action:
            document["action"] = action
        self.minutes += 1
        document["occurred_at"] = when or (START + timedelta(minutes=self.minutes)).isoformat()
        document["hotel_id"] = self.hotel_id
        published = (datetime.fromisoformat(sent) if sent else
                     datetime.fromisoformat(document["occurred_at"]) + timedelta(seconds=1))
        return build_event(document, publisher=system or default_system,
                           default_hotel_id=self.hotel_id, limits=limits, now=published)

    # what the hotel does

    def room(self, room_id: str, room_type: str = "DBL", status: str = "vacant_clean",
             version: int = 1, **data: Any) -> Step:
        return self.apply(self.room_event(room_id, room_type, status, version, **data))

    def room_event(self, room_id: str, room_type: str = "DBL", status: str = "vacant_clean",
                   version: int = 1, **data: Any) -> Any:
        return self.event(EventKind.ROOM, room_id, action="status_changed",
                          room_number=room_id.removeprefix("RM-"), room_type=room_type,
                          status=status, version=version, **data)

    def rooms(self, count: int, room_type: str = "DBL") -> None:
        for number in range(count):
            assert not self.room(f"RM-{room_type}{number}", room_type).refusals

    def booking(self, reservation_id: str, first: int, last: int, *, status: str = "confirmed",
                version: int = 1, room_type: str = "DBL", **data: Any) -> Any:
        """A booking for the nights `first`..`last - 1` of November 2026."""
        return self.event(EventKind.RESERVATION, reservation_id, status=status, version=version,
                          room_type=room_type, checkin_date=night(first).isoformat(),
                          checkout_date=night(last).isoformat(),
                          action=None if version == 1 else "updated", **data)

    def book(self, reservation_id: str, first: int, last: int, **data: Any) -> Step:
        return self.apply(self.booking(reservation_id, first, last, **data))

    def movement(self, reservation_id: str, action: str, room_id: str = "RM-DBL0",
                 when: str | None = None, **data: Any) -> Any:
        """A check-in (the 23rd, 15:00), check-out (the 25th, 10:00) or no-show, occurring
        when the guest moved unless `when` says otherwise."""
        times: dict[str, Any] = {"actual_checkin_time": clock(23, 15),
                                 "actual_checkout_time": None}
        if action == "checked_out":
            times["actual_checkout_time"] = clock(25, 10)
        times |= data
        moment = when or times["actual_checkout_time"] or times["actual_checkin_time"]
        return self.event(EventKind.CHECKIN_CHECKOUT, reservation_id, action=action,
                          when=moment, room_id=room_id, room_number=room_id.removeprefix("RM-"),
                          **times)

    def move(self, reservation_id: str, action: str, **data: Any) -> Step:
        return self.apply(self.movement(reservation_id, action, **data))

    # what the hotel knows

    def key(self, entity: str) -> bytes:
        return f"{self.hotel_id}:{entity}".encode()

    def stay(self, reservation_id: str) -> ReservationState:
        return self.state[STAY, self.key(reservation_id)]  # type: ignore[no-any-return]

    def room_state(self, room_id: str) -> RoomState:
        return self.state[ROOM, self.key(room_id)]  # type: ignore[no-any-return]

    def inventory(self, room_type: str = "DBL") -> AvailabilityState:
        return self.state[AVAILABILITY, self.key(room_type)]  # type: ignore[no-any-return]

    def free(self, first: int, last: int, room_type: str = "DBL") -> list[int]:
        inventory = self.inventory(room_type)
        return [inventory.free(night(day)) for day in range(first, last)]


def codes(step: Step) -> list[RefusalReason]:
    return [refusal.reason_code for refusal in step.refusals]


def refused(step: Step, code: RefusalReason) -> str:
    """The one refusal's text, after checking that the step refused with `code` and changed
    nothing."""
    assert codes(step) == [code], [refusal.reason for refusal in step.refusals]
    assert step.changes == {} and not step.room_events and not step.duplicate
    return step.refusals[0].reason


# --- selling what the house has ------------------------------------------------------


def test_a_booking_beyond_the_free_rooms_is_refused_naming_the_nights() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    assert not hotel.book("B1", 23, 25).refusals
    before = dict(hotel.state)
    reason = refused(hotel.book("B2", 24, 26), RefusalReason.OVERBOOKED)
    assert "2026-11-24" in reason and "2026-11-25" not in reason and "2026-11-23" not in reason
    assert "DBL" in reason and "allowance 0" in reason
    assert hotel.state == before
    assert hotel.free(23, 26) == [0, 0, 1]


def test_every_short_night_is_named() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 22, 23)
    hotel.book("B2", 24, 25)
    reason = refused(hotel.book("B3", 21, 26), RefusalReason.OVERBOOKED)
    assert "2026-11-22, 2026-11-24" in reason
    assert "2026-11-21" not in reason and "2026-11-23" not in reason


def test_five_bookings_for_one_room_sell_it_once() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    steps = [hotel.book(f"B{n}", 23, 25) for n in range(5)]
    assert [codes(step) for step in steps] == [[]] + [[RefusalReason.OVERBOOKED]] * 4
    assert hotel.free(23, 25) == [0, 0]


@pytest.mark.parametrize(("allowance", "rooms", "extra"), [
    ("2", 1, 2), ("0", 3, 0), ("50%", 4, 2), ("5%", 10, 0), ("10%", 30, 3),
])
def test_an_allowance_lets_exactly_that_many_extra_bookings_through(
        allowance: str, rooms: int, extra: int) -> None:
    hotel = Hotel(RuleSettings(overbooking={"H1": {"DBL": allowance}}))
    hotel.rooms(rooms)
    steps = [hotel.book(f"B{n}", 23, 25) for n in range(rooms + extra + 2)]
    assert [codes(step) for step in steps] == (
        [[]] * (rooms + extra) + [[RefusalReason.OVERBOOKED]] * 2)
    assert hotel.free(23, 25) == [-extra, -extra]
    assert f"allowance {extra}" in steps[-1].refusals[0].reason


def test_an_allowance_is_per_hotel_and_room_type() -> None:
    """The most specific entry wins: the hotel's type, the hotel's "*", then any hotel's."""
    rules = RuleSettings(overbooking={"H1": {"TWN": "1", "SGL": "0"}, "*": {"*": "5"}})
    hotel = Hotel(rules)
    hotel.rooms(1, "SGL")
    hotel.rooms(1, "TWN")
    assert codes(hotel.book("B1", 23, 24, room_type="SGL")) == []
    assert codes(hotel.book("B2", 23, 24, room_type="SGL")) == [RefusalReason.OVERBOOKED]
    assert [codes(hotel.book(f"T{n}", 23, 24, room_type="TWN")) for n in range(3)] == [
        [], [], [RefusalReason.OVERBOOKED]]
    other = Hotel(rules, hotel_id="H2")
    other.rooms(1)
    assert [codes(other.book(f"B{n}", 23, 24)) for n in range(7)] == (
        [[]] * 6 + [[RefusalReason.OVERBOOKED]])


def test_a_booking_for_a_room_type_the_hotel_does_not_have_is_refused() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    before = dict(hotel.state)
    reason = refused(hotel.book("B1", 23, 25, room_type="STE"), RefusalReason.UNKNOWN_ENTITY)
    assert "STE" in reason
    assert hotel.state == before


def test_a_booking_may_not_change_to_a_room_type_the_hotel_does_not_have() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    before = dict(hotel.state)
    refused(hotel.book("B1", 23, 25, version=2, room_type="STE"), RefusalReason.UNKNOWN_ENTITY)
    assert hotel.state == before


def test_a_hotel_without_rooms_sells_nothing() -> None:
    hotel = Hotel()
    refused(hotel.book("B1", 23, 25), RefusalReason.UNKNOWN_ENTITY)
    assert hotel.state == {}


def test_a_booking_changing_dates_is_checked_only_on_the_nights_it_adds() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    hotel.book("B2", 25, 26)
    assert hotel.free(22, 26) == [1, 0, 0, 0]
    # Its own nights are full; the one it adds (the 22nd) is free.
    assert not hotel.book("B1", 22, 24, version=2).refusals
    assert hotel.free(22, 26) == [0, 0, 1, 0]
    # Adding the 24th again is fine, adding the 25th (B2's) is not; only that night is named.
    reason = refused(hotel.book("B1", 22, 26, version=3), RefusalReason.OVERBOOKED)
    assert "2026-11-25" in reason and "2026-11-24" not in reason and "2026-11-22" not in reason
    assert hotel.stay("B1").checkout_date == night(24)


def test_a_booking_moving_to_another_type_is_checked_on_that_type() -> None:
    hotel = Hotel()
    hotel.rooms(1, "DBL")
    hotel.rooms(1, "TWN")
    hotel.book("T1", 23, 25, room_type="TWN")
    hotel.book("B1", 23, 25)
    refused(hotel.book("B1", 23, 25, version=2, room_type="TWN"), RefusalReason.OVERBOOKED)
    hotel.book("B1", 23, 25, version=2, status="cancelled")
    assert not hotel.book("T1", 23, 25, version=2, room_type="DBL").refusals
    assert hotel.free(23, 25, "TWN") == [1, 1] and hotel.free(23, 25, "DBL") == [0, 0]


def test_a_waitlisted_booking_is_confirmed_only_when_there_is_room() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    assert not hotel.book("W1", 23, 25, status="waitlisted").refusals
    refused(hotel.book("W1", 23, 25, version=2), RefusalReason.OVERBOOKED)
    hotel.book("B1", 23, 25, version=2, status="cancelled")
    assert not hotel.book("W1", 23, 25, version=2).refusals
    assert hotel.stay("W1").status is ReservationStatus.CONFIRMED


@pytest.mark.parametrize("release", ["cancelled", "no_show"])
def test_cancellation_and_no_show_release_the_nights(release: str) -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    refused(hotel.book("B2", 23, 25), RefusalReason.OVERBOOKED)
    if release == "cancelled":
        step = hotel.book("B1", 23, 25, version=2, status="cancelled")
    else:
        step = hotel.move("B1", "no_show", when=clock(24, 2))
    assert not step.refusals and not step.room_events
    assert hotel.stay("B1").status is ReservationStatus(release)
    assert hotel.free(23, 25) == [1, 1]
    assert not hotel.book("B2", 23, 25).refusals
    assert hotel.free(23, 25) == [0, 0]


def test_an_early_departure_frees_the_nights_not_stayed() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 26)
    assert not hotel.move("B1", "checked_in").refusals
    refused(hotel.book("B2", 24, 26), RefusalReason.OVERBOOKED)
    step = hotel.move("B1", "checked_out", actual_checkout_time=clock(24, 9, 30))
    assert not step.refusals
    assert hotel.stay("B1").departure_date == night(24)
    assert hotel.free(23, 26) == [0, 1, 1]
    assert not hotel.book("B2", 24, 26).refusals
    assert hotel.free(23, 26) == [0, 0, 0]


# --- rooms the hub must know, and whose room it is ------------------------------------


def test_a_check_in_to_an_unknown_room_is_refused_and_creates_no_room() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    before = dict(hotel.state)
    reason = refused(hotel.move("B1", "checked_in", room_id="RM-999"),
                     RefusalReason.UNKNOWN_ENTITY)
    assert "RM-999" in reason
    assert hotel.state == before
    assert (ROOM, hotel.key("RM-999")) not in hotel.state
    assert hotel.stay("B1").status is ReservationStatus.CONFIRMED


def test_a_check_in_waiting_for_its_booking_still_needs_a_known_room() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    parked = hotel.move("B1", "checked_in", room_id="RM-999")
    assert not parked.refusals and not hotel.stay("B1").known
    step = hotel.book("B1", 23, 25)
    assert codes(step) == [RefusalReason.UNKNOWN_ENTITY]
    assert hotel.stay("B1").status is ReservationStatus.CONFIRMED
    assert (ROOM, hotel.key("RM-999")) not in hotel.state and not step.room_events


def test_a_check_in_that_overtook_its_booking_is_applied_with_it() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    assert hotel.move("B1", "checked_in").changes.keys() == {(STAY, hotel.key("B1"))}
    step = hotel.book("B1", 23, 25)
    assert not step.refusals and len(step.room_events) == 1
    assert hotel.stay("B1").status is ReservationStatus.CHECKED_IN
    assert hotel.room_state("RM-DBL0").status is RoomStatus.OCCUPIED_CLEAN
    assert hotel.free(23, 25) == [0, 0]


def test_a_late_check_out_leaves_the_next_guest_in_the_room() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("A", 22, 23)
    hotel.book("B", 23, 25)
    assert not hotel.move("A", "checked_in", actual_checkin_time=clock(22, 15)).refusals
    assert not hotel.move("B", "checked_in", actual_checkin_time=clock(23, 15)).refusals
    # A left at 10:00, before B arrived; the front desk's news of it comes late.
    late = hotel.move("A", "checked_out", actual_checkout_time=clock(23, 10),
                      when=clock(23, 10))
    assert not late.refusals and not late.room_events
    assert hotel.stay("A").status is ReservationStatus.CHECKED_OUT
    room = hotel.room_state("RM-DBL0")
    assert room.status is RoomStatus.OCCUPIED_CLEAN and room.current_reservation_id == "B"
    assert hotel.free(22, 25) == [0, 0, 0]


def test_a_check_out_vacates_the_room_it_occupies() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    hotel.move("B1", "checked_in")
    step = hotel.move("B1", "checked_out")
    assert [event.data.status for event in step.room_events] == [RoomStatus.VACANT_DIRTY]
    room = hotel.room_state("RM-DBL0")
    assert room.status is RoomStatus.VACANT_DIRTY and room.current_reservation_id is None


def test_an_older_pms_room_event_keeps_the_check_in_status_and_takes_the_rest() -> None:
    hotel = Hotel()
    hotel.room("RM-DBL0", version=1)
    hotel.book("B1", 23, 25)
    older = hotel.room_event("RM-DBL0", version=2, status="vacant_clean",
                             base_price="21000", maintenance_notes="new curtains",
                             when=clock(23, 14))
    assert not hotel.move("B1", "checked_in", when=clock(23, 15)).refusals
    step = hotel.apply(older)
    assert not step.refusals and not step.duplicate
    room = hotel.room_state("RM-DBL0")
    assert room.status is RoomStatus.OCCUPIED_CLEAN and room.current_reservation_id == "B1"
    assert room.base_price == Decimal("21000") and room.maintenance_notes == "new curtains"
    assert room.version == 2 and room.versions == {"hotel-pms": 2}
    # The PMS's own order still holds: its version 2 again is stale.
    stale = hotel.room_event("RM-DBL0", version=2, status="vacant_dirty")
    refused(hotel.apply(stale), RefusalReason.STALE_VERSION)


def test_a_newer_pms_room_event_overrides_the_derived_status() -> None:
    hotel = Hotel()
    hotel.room("RM-DBL0")
    hotel.book("B1", 23, 25)
    hotel.move("B1", "checked_in", when=clock(23, 15))
    hotel.apply(hotel.room_event("RM-DBL0", version=2, status="occupied_dirty",
                                 reservation_id="B1", when=clock(24, 9)))
    room = hotel.room_state("RM-DBL0")
    assert room.status is RoomStatus.OCCUPIED_DIRTY and room.current_reservation_id == "B1"


# --- customers: versions belong to their system -------------------------------------


def test_pms_version_2_to_the_62_does_not_lock_out_the_member_system() -> None:
    hotel = Hotel()
    created = hotel.event(EventKind.CUSTOMER, "C1", action="created", version=1,
                          updatable_by_pms=True)
    assert not hotel.apply(created).refusals
    pms = hotel.event(EventKind.CUSTOMER, "C1", system=System.HOTEL_PMS, action="updated",
                      version=2**62, email="front@example.com", updated_fields=["email"])
    assert not hotel.apply(pms).refusals
    member = hotel.event(EventKind.CUSTOMER, "C1", action="points_changed", version=2,
                         total_points=1500, updated_fields=["total_points"])
    assert not hotel.apply(member).refusals
    state = hotel.state[CUSTOMER, hotel.key("C1")]
    assert state.total_points == 1500 and state.email == "front@example.com"
    assert state.versions == {"hotel-member": 2, "hotel-pms": 2**62}


# --- limits ---------------------------------------------------------------------------


def _with_data(found: HotelEvent, **data: Any) -> Any:
    """`found` with payload fields replaced without validation: what bypasses the publisher."""
    return found.model_copy(update={"data": found.data.model_copy(update=data)})


@pytest.mark.parametrize("bad", [
    "negative booking", "negative room rate", "negative charges", "long stay",
    "long stay unvalidated", "long notes", "long name", "long id", "many fields",
])
def test_values_beyond_the_limits_are_refused_and_change_nothing(bad: str) -> None:
    hotel = Hotel(RuleSettings(limits=Limits(max_stay_nights=30)))
    hotel.rooms(2)
    hotel.book("B1", 23, 25)
    hotel.move("B1", "checked_in")
    hotel.apply(hotel.event(EventKind.CUSTOMER, "C1", action="created"))
    events = {
        "negative booking": lambda: _with_data(hotel.booking("B1", 23, 25, version=2),
                                               total_amount=Decimal("-1")),
        "negative room rate": lambda: _with_data(hotel.room_event("RM-DBL1", version=2),
                                                 base_price=Decimal("-0.001")),
        "negative charges": lambda: _with_data(hotel.movement("B1", "checked_out"),
                                               additional_charges=Decimal("-500")),
        "long stay": lambda: hotel.event(EventKind.RESERVATION, "B2", limits=ROOMY,
                                         checkin_date="2026-11-23",
                                         checkout_date="2027-11-23"),
        "long stay unvalidated": lambda: _with_data(hotel.booking("B2", 23, 24),
                                                    checkout_date=date(2226, 11, 23)),
        "long notes": lambda: hotel.room_event("RM-DBL1", version=2, limits=ROOMY,
                                               maintenance_notes="x" * 5000),
        "long name": lambda: hotel.event(EventKind.CUSTOMER, "C1", limits=ROOMY, version=4,
                                         action="updated", name="N" * 1001,
                                         updated_fields=["name"]),
        "long id": lambda: _with_data(hotel.booking("B1", 23, 25, version=2),
                                      room_number="9" * 100_000),
        "many fields": lambda: hotel.event(EventKind.CUSTOMER, "C1", limits=ROOMY, version=4,
                                           action="updated",
                                           updated_fields=["name"] * 101),
    }
    event = events[bad]()
    before = dict(hotel.state)
    reason = refused(hotel.apply(event), RefusalReason.INVALID_VALUE)
    assert "data." in reason
    assert hotel.state == before


def test_a_stay_of_exactly_the_limit_is_taken() -> None:
    hotel = Hotel(RuleSettings(limits=Limits(max_stay_nights=3)))
    hotel.rooms(1)
    assert not hotel.book("B1", 20, 23).refusals
    refused(hotel.apply(_with_data(hotel.booking("B2", 23, 24), checkout_date=night(27))),
            RefusalReason.INVALID_VALUE)


# --- resends --------------------------------------------------------------------------


def _resend_setup(kind: str, hotel: Hotel, between: int) -> HotelEvent:
    """Apply a first event of `kind`, then `between` later events of the same entity;
    return the first event, to be sent again."""
    first: HotelEvent
    hotel.rooms(1)
    hotel.apply(hotel.event(EventKind.CUSTOMER, "C1", action="created"))
    if kind == "booking":
        first = hotel.booking("B1", 23, 25)
        hotel.apply(first)
        later = [hotel.booking("B1", 23, 25, version=v, total_amount=str(20000 + v))
                 for v in range(2, between + 2)]
    elif kind == "movement":
        hotel.book("B1", 23, 25)
        first = hotel.movement("B1", "checked_in")
        hotel.apply(first)
        later = [hotel.booking("B1", 23, 25, version=v, total_amount=str(20000 + v))
                 for v in range(2, between + 2)]
    elif kind == "room":
        first = hotel.room_event("RM-201", version=1)
        hotel.apply(first)
        later = [hotel.room_event("RM-201", version=v, base_price=str(10000 + v))
                 for v in range(2, between + 2)]
    else:
        first = hotel.event(EventKind.CUSTOMER, "C2", action="created", version=1)
        hotel.apply(first)
        later = [hotel.event(EventKind.CUSTOMER, "C2", action="points_changed", version=v,
                             total_points=v, updated_fields=["total_points"])
                 for v in range(2, between + 2)]
    for event in later:
        assert not hotel.apply(event).refusals
    # and events of other entities in between
    hotel.book("B9", 20, 21)
    return first


@pytest.mark.parametrize("between", [0, 1, 7])
@pytest.mark.parametrize("kind", ["booking", "room", "customer"])
def test_a_resent_event_is_silent_among_its_entitys_recent_events(kind: str,
                                                                  between: int) -> None:
    hotel = Hotel()
    first = _resend_setup(kind, hotel, between)
    before = dict(hotel.state)
    step = hotel.apply(first)
    assert step.duplicate and not step.refusals and step.changes == {}
    assert hotel.state == before


@pytest.mark.parametrize("between", [8, 50])
@pytest.mark.parametrize("kind", ["booking", "room", "customer"])
def test_a_resent_event_changes_nothing_however_many_events_came_between(
        kind: str, between: int) -> None:
    """Its system's version high-water mark is exact at any age; past the last 8 events
    the sender is told, with a refusal that says nothing changed."""
    hotel = Hotel()
    first = _resend_setup(kind, hotel, between)
    before = dict(hotel.state)
    step = hotel.apply(first)
    assert step.changes == {} and hotel.state == before
    assert [refusal.reason_code for refusal in step.refusals] == [RefusalReason.STALE_VERSION]
    assert "nothing changed" in step.refusals[0].reason


@pytest.mark.parametrize("between", [0, 1, 7, 8, 50])
def test_a_resent_movement_is_silent_however_many_events_came_between(between: int) -> None:
    hotel = Hotel()
    first = _resend_setup("movement", hotel, between)
    before = dict(hotel.state)
    step = hotel.apply(first)
    assert step.duplicate and not step.refusals and step.changes == {}
    assert not step.room_events and hotel.state == before


def test_a_resent_check_in_after_check_out_is_silent() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    check_in = hotel.movement("B1", "checked_in")
    hotel.apply(check_in)
    hotel.move("B1", "checked_out")
    before = dict(hotel.state)
    step = hotel.apply(check_in)
    assert step.duplicate and not step.refusals and not step.room_events
    assert hotel.state == before


def test_a_resent_waiting_check_in_is_silent() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    check_in = hotel.movement("B1", "checked_in")
    hotel.apply(check_in)
    step = hotel.apply(check_in)
    assert step.duplicate and step.changes == {} and not step.refusals
    assert len(hotel.stay("B1").pending_movements) == 1


# --- hotels sharing a partition -------------------------------------------------------


def test_hotels_with_the_same_ids_keep_apart_in_one_partition() -> None:
    one, two = Hotel(hotel_id="H1"), Hotel(hotel_id="H2")
    two.state = one.state  # one partition holds both hotels
    one.rooms(1)
    two.rooms(1)
    assert not one.book("B1", 23, 25).refusals
    assert not two.book("B1", 24, 26).refusals
    assert one.free(23, 26) == [0, 0, 1] and two.free(23, 26) == [1, 0, 0]
    assert one.stay("B1").checkin_date == night(23) and two.stay("B1").checkin_date == night(24)


# --- whichever topic delivers first -------------------------------------------------


def test_a_booking_update_sent_before_check_out_but_delivered_after_it_is_applied() -> None:
    def day(reordered: bool) -> Hotel:
        hotel = Hotel()
        hotel.rooms(1)
        first = hotel.booking("B1", 23, 25, when=clock(1, 9))
        longer = hotel.booking("B1", 23, 26, version=2, when=clock(2, 9))  # made on Nov 2
        check_in = hotel.movement("B1", "checked_in", when=clock(23, 15))
        check_out = hotel.movement("B1", "checked_out", when=clock(26, 10),
                                   actual_checkout_time=clock(26, 10))
        order = [first, check_in, check_out, longer] if reordered else [
            first, longer, check_in, check_out]
        for event in order:
            hotel.apply(event)
        return hotel

    in_order, reordered = day(False), day(True)
    assert in_order.stay("B1").checkout_date == night(26)
    assert reordered.stay("B1").checkout_date == in_order.stay("B1").checkout_date
    assert reordered.free(23, 27) == in_order.free(23, 27) == [0, 0, 0, 1]


def test_a_room_knows_its_guest_whichever_arrives_first() -> None:
    """A PMS status that names no guest (occupied_dirty at 19:00) delivered before the
    15:00 check-in: the older check-in still names the room's guest."""
    def day(reordered: bool) -> RoomState:
        hotel = Hotel()
        hotel.room("RM-DBL0")
        hotel.book("B1", 23, 25)
        check_in = hotel.movement("B1", "checked_in", when=clock(23, 15))
        housekeeping = hotel.room_event("RM-DBL0", version=2, status="occupied_dirty",
                                        when=clock(23, 19))
        for event in [housekeeping, check_in] if reordered else [check_in, housekeeping]:
            assert not hotel.apply(event).refusals
        return hotel.room_state("RM-DBL0")

    in_order, reordered = day(False), day(True)
    assert in_order.current_reservation_id == "B1"
    assert reordered.current_reservation_id == in_order.current_reservation_id


def test_an_out_of_order_night_is_kept_whichever_arrives_first() -> None:
    """hotel-pms marks the room out of order for the 24th while the guest is still in; the
    check-out that follows is delivered first. The night stays out of order."""
    def day(reordered: bool) -> Hotel:
        hotel = Hotel()
        hotel.rooms(1)
        hotel.book("B1", 22, 23)
        hotel.move("B1", "checked_in", actual_checkin_time=clock(22, 15),
                   when=clock(22, 15))
        maintenance = hotel.room_event("RM-DBL0", version=2, status="out_of_order",
                                       availability_date="2026-11-24", when=clock(23, 8))
        check_out = hotel.movement("B1", "checked_out", actual_checkout_time=clock(23, 10),
                                   when=clock(23, 10))
        for event in [check_out, maintenance] if reordered else [maintenance, check_out]:
            assert not hotel.apply(event).refusals
        return hotel

    in_order, reordered = day(False), day(True)
    assert in_order.free(22, 25) == [0, 1, 0]
    assert reordered.free(22, 25) == in_order.free(22, 25)
    assert (reordered.room_state("RM-DBL0").out_of_order_dates
            == in_order.room_state("RM-DBL0").out_of_order_dates)


def test_a_check_in_waits_for_the_booking_version_it_needs() -> None:
    """A check-in that overtook a booking whose first version is waitlisted waits for the
    version that confirms it."""
    def day(reordered: bool) -> Hotel:
        hotel = Hotel()
        hotel.rooms(1)
        waitlisted = hotel.booking("B1", 23, 25, status="waitlisted")
        confirmed = hotel.booking("B1", 23, 25, version=2)
        check_in = hotel.movement("B1", "checked_in")
        for event in [check_in, waitlisted, confirmed] if reordered else [
                waitlisted, confirmed, check_in]:
            hotel.apply(event)
        return hotel

    in_order, reordered = day(False), day(True)
    assert in_order.stay("B1").status is ReservationStatus.CHECKED_IN
    assert reordered.stay("B1").status is in_order.stay("B1").status


def test_the_stays_room_is_the_one_checked_into_whichever_arrives_first() -> None:
    def day(reordered: bool) -> ReservationState:
        hotel = Hotel()
        hotel.rooms(1)
        first = hotel.booking("B1", 23, 25, room_number="201")
        update = hotel.booking("B1", 23, 25, version=2, room_number="201",
                               total_amount="31000")
        check_in = hotel.movement("B1", "checked_in", room_id="RM-DBL0")
        for event in [first, check_in, update] if reordered else [first, update, check_in]:
            assert not hotel.apply(event).refusals
        return hotel.stay("B1")

    in_order, reordered = day(False), day(True)
    assert (in_order.room_number, in_order.room_id) == ("DBL0", "RM-DBL0")
    assert (reordered.room_number, reordered.room_id) == (in_order.room_number,
                                                          in_order.room_id)


def test_booking_news_published_after_the_stay_ended_is_refused_whatever_it_claims() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    hotel.move("B1", "checked_in")
    hotel.move("B1", "checked_out")
    before = dict(hotel.state)
    # Says it happened on the 2nd; its publisher sent it after the check-out.
    late = hotel.booking("B1", 23, 27, version=2, when=clock(2, 9), sent=clock(25, 11))
    reason = refused(hotel.apply(late), RefusalReason.ILLEGAL_TRANSITION)
    assert "checkout_date" in reason and "history" in reason
    assert hotel.state == before


def test_a_late_booking_update_keeps_the_stay_finished_and_its_departure() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    longer = hotel.booking("B1", 23, 27, version=2, status="guaranteed", total_amount="50000",
                           when=clock(2, 9))
    hotel.move("B1", "checked_in")
    hotel.move("B1", "checked_out", actual_checkout_time=clock(24, 9))  # left early
    step = hotel.apply(longer)
    assert not step.refusals and not step.room_events
    stay = hotel.stay("B1")
    assert stay.status is ReservationStatus.CHECKED_OUT
    assert (stay.checkout_date, stay.departure_date, stay.total_amount) == (
        night(27), night(24), Decimal("50000"))
    assert hotel.free(23, 27) == [0, 1, 1, 1]


@pytest.mark.parametrize("release", ["cancelled", "no_show"])
def test_a_late_booking_update_of_a_cancelled_or_no_show_stay_holds_no_nights(
        release: str) -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    longer = hotel.booking("B1", 23, 27, version=2, when=clock(2, 9))
    if release == "cancelled":
        hotel.apply(hotel.booking("B1", 23, 25, version=2, status="cancelled",
                                  system=System.HOTEL_MEMBER, when=clock(3, 9)))
    else:
        hotel.move("B1", "no_show", when=clock(24, 2))
    hotel.apply(longer)
    assert hotel.stay("B1").status is ReservationStatus(release)
    assert hotel.free(23, 27) == [1, 1, 1, 1]


def test_a_no_show_waits_while_the_booking_is_waitlisted() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25, status="waitlisted")
    waiting = hotel.move("B1", "no_show", when=clock(24, 2))
    assert not waiting.refusals and hotel.stay("B1").status is ReservationStatus.WAITLISTED
    assert len(hotel.stay("B1").pending_movements) == 1
    hotel.book("B1", 23, 25, version=2)
    assert hotel.stay("B1").status is ReservationStatus.NO_SHOW
    assert hotel.free(23, 25) == [1, 1]


def test_a_check_out_of_a_waitlisted_stay_never_checked_in_is_refused() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25, status="waitlisted")
    refused(hotel.move("B1", "checked_out"), RefusalReason.ILLEGAL_TRANSITION)


def test_an_older_check_in_names_the_guest_but_announces_no_status() -> None:
    hotel = Hotel()
    hotel.room("RM-DBL0")
    hotel.book("B1", 23, 25)
    hotel.apply(hotel.room_event("RM-DBL0", version=2, status="occupied_dirty",
                                 when=clock(23, 19)))
    step = hotel.move("B1", "checked_in", when=clock(23, 15))
    assert not step.refusals and not step.room_events
    room = hotel.room_state("RM-DBL0")
    assert room.status is RoomStatus.OCCUPIED_DIRTY and room.current_reservation_id == "B1"


def test_an_older_check_in_does_not_name_a_guest_in_a_vacant_room() -> None:
    hotel = Hotel()
    hotel.room("RM-DBL0")
    hotel.book("B1", 23, 25)
    hotel.apply(hotel.room_event("RM-DBL0", version=2, status="vacant_dirty",
                                 when=clock(24, 12)))
    step = hotel.move("B1", "checked_in", when=clock(23, 15))
    assert not step.refusals and not step.room_events
    room = hotel.room_state("RM-DBL0")
    assert room.status is RoomStatus.VACANT_DIRTY and room.current_reservation_id is None


def test_a_check_out_waits_behind_its_waiting_check_in() -> None:
    def day(reordered: bool) -> Hotel:
        hotel = Hotel()
        hotel.rooms(1)
        waitlisted = hotel.booking("B1", 23, 25, status="waitlisted")
        confirmed = hotel.booking("B1", 23, 25, version=2)
        check_in = hotel.movement("B1", "checked_in")
        check_out = hotel.movement("B1", "checked_out")
        for event in [waitlisted, check_in, check_out, confirmed] if reordered else [
                waitlisted, confirmed, check_in, check_out]:
            hotel.apply(event)
        return hotel

    in_order, reordered = day(False), day(True)
    assert in_order.stay("B1").status is ReservationStatus.CHECKED_OUT
    assert reordered.stay("B1").status is ReservationStatus.CHECKED_OUT
    assert reordered.room_state("RM-DBL0").status is RoomStatus.VACANT_DIRTY


def test_an_echo_of_the_check_in_does_not_turn_away_older_booking_news() -> None:
    hotel = Hotel()
    hotel.rooms(1)
    hotel.book("B1", 23, 25)
    older = hotel.booking("B1", 23, 25, version=2, total_amount="31000", when=clock(21, 9))
    hotel.move("B1", "checked_in")
    echo = hotel.booking("B1", 23, 25, status="checked_in", version=1,
                         system=System.HOTEL_PMS, when=clock(23, 16))
    assert not hotel.apply(echo).refusals
    step = hotel.apply(older)
    assert not step.refusals
    stay = hotel.stay("B1")
    assert stay.status is ReservationStatus.CHECKED_IN
    assert stay.total_amount == Decimal("31000")


# --- what arrives before its room or room type waits for it ----------------------------------


WAITING_RULES = RuleSettings(order_grace_s=120)


def test_a_booking_read_before_its_room_type_waits_for_it() -> None:
    hotel = Hotel(WAITING_RULES)
    booking = hotel.booking("B1", 23, 25)
    early = hotel.apply(booking)
    assert not early.refusals and not early.duplicate
    assert (STAY, hotel.key("B1")) not in hotel.state
    resent = hotel.apply(booking)
    assert resent.duplicate and not resent.refusals  # waits once
    arrival = hotel.room("RM-DBL0")
    assert not arrival.refusals
    assert hotel.stay("B1").status is ReservationStatus.CONFIRMED
    assert hotel.free(23, 26) == [0, 0, 1]
    assert hotel.state[WAITING, b"H1"].events == []


def test_a_check_in_read_before_its_room_waits_for_it() -> None:
    hotel = Hotel(WAITING_RULES)
    hotel.rooms(1, "DBL")
    hotel.book("B1", 23, 25)
    assert not hotel.move("B1", "checked_in", room_id="RM-DBL7").refusals
    assert hotel.stay("B1").status is ReservationStatus.CONFIRMED
    arrival = hotel.room("RM-DBL7")
    assert [event.data.status for event in arrival.room_events] == [RoomStatus.OCCUPIED_CLEAN]
    assert hotel.stay("B1").status is ReservationStatus.CHECKED_IN
    assert hotel.room_state("RM-DBL7").current_reservation_id == "B1"


def test_what_waits_longer_than_the_grace_is_refused_and_changes_nothing() -> None:
    hotel = Hotel(WAITING_RULES)
    hotel.rooms(1, "DBL")
    booking = hotel.booking("B1", 23, 25, room_type="STE", sent=clock(20, 9))
    assert not hotel.apply(booking).refusals
    within = hotel.apply(hotel.booking("B2", 23, 24, sent=clock(20, 9, 2)))
    assert codes(within) == []
    later = hotel.apply(hotel.booking("B3", 24, 25, sent=clock(20, 9, 3)))
    reason = refused_only(later, booking, RefusalReason.UNKNOWN_ENTITY)
    assert "room type STE" in reason and "120 s" in reason
    assert hotel.state[WAITING, b"H1"].events == []
    assert (STAY, hotel.key("B1")) not in hotel.state
    assert (AVAILABILITY, hotel.key("STE")) not in hotel.state
    assert hotel.free(23, 25) == [0, 0]  # B2 and B3 took the one room


def refused_only(step: Step, event: Any, code: RefusalReason) -> str:
    assert [(r.refused_event_id, r.reason_code) for r in step.refusals] == [(event.event_id, code)]
    return step.refusals[0].reason


def test_a_full_waiting_room_refuses_at_once() -> None:
    """However a backlog is read, a hotel keeps a bounded number of events waiting."""
    hotel = Hotel(RuleSettings(order_grace_s=10**6))  # the test's clock moves a minute an event
    for number in range(WAITING_ROOM_SIZE):
        assert not hotel.book(f"B{number}", 23, 24).refusals
    over = hotel.book("B-over", 23, 24)
    assert codes(over) == [RefusalReason.UNKNOWN_ENTITY]
    assert len(hotel.state[WAITING, b"H1"].events) == WAITING_ROOM_SIZE
    arrival = hotel.room("RM-DBL0")  # all go on; one room holds one of them
    assert codes(arrival) == [RefusalReason.OVERBOOKED] * (WAITING_ROOM_SIZE - 1)
    assert hotel.state[WAITING, b"H1"].events == []
    assert hotel.free(23, 24) == [0]
