"""Properties of the hotel step (`streams.core.step.apply_event`), checked with hypothesis.

(a) A simulated hotel day delivered in any order that keeps each entity's own order
    (check-in/out events are on another topic and may overtake their booking), with
    redeliveries of events already delivered, ends in the same stays, rooms, customers
    and availability as the day replayed in order.
(b) Whatever the order and redeliveries, and with bookings beyond what the house has,
    no night's free count goes below minus the hotel's overbooking allowance (never below
    zero without one), and the counts agree with the stays and rooms.
(c) Values beyond the hotel's limits, built past the publisher, are refused
    (`invalid_value`) and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streams.core.documents import build_event
from streams.core.kinds import EventKind, System
from streams.core.limits import Limits
from streams.core.models import (
    CheckinCheckoutEvent,
    CustomerEvent,
    HotelEvent,
    RefusalReason,
    ReservationEvent,
    RoomEvent,
    entity_id,
    record_key,
)
from streams.core.rules import RuleSettings, held_nights
from streams.core.state import AvailabilityState, RoomState
from streams.core.step import AVAILABILITY, ROOM, STAY, WAITING, Step, apply_event
from tests.support.events import sample

HOTEL = "H1"
JST = timezone(timedelta(hours=9))
OPENING = date(2026, 11, 20)
"""The first night of the simulated days; bookings are made from November 1st."""
LAST_NIGHT = date(2026, 11, 27)
ROOMY = Limits(max_stay_nights=100_000, max_text_length=10**7, max_list_length=10**5)
"""What a publisher that does not check the hotel's limits lets through."""

State = dict[tuple[str, bytes], Any]

PROPERTY = settings(max_examples=150, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
"""No shrinking: a day of events shrinks for minutes on a shared machine, and the report
of a failing day (one line per event, and the entities that differ) reads well unshrunk.
Add Phase.shrink locally when a smaller example helps."""


def moment(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=JST) + timedelta(minutes=minute)


def make(kind: EventKind, entity: str, when: datetime, *, system: System | None = None,
         action: str | None = None, limits: Limits | None = None, **data: Any) -> Any:
    default_system, document = sample(kind, entity, **data)
    if action:
        document["action"] = action
    document["occurred_at"] = when.isoformat()
    # Published a second after it happened: the publisher stamps `synced_at`.
    return build_event(document, publisher=system or default_system, default_hotel_id=HOTEL,
                       limits=limits, now=when + timedelta(seconds=1))


def describe(event: HotelEvent) -> str:
    """One line per event, for hypothesis's report of a failing example."""
    data: Any = event.data
    text = (f"{event.occurred_at:%m-%d %H:%M} {event.type}.{event.action} {entity_id(event)} "
            f"by {event.updated_by_system}")
    if isinstance(event, ReservationEvent):
        text += (f" v{data.version} {data.status} {data.room_type} "
                 f"{data.checkin_date:%m-%d}..{data.checkout_date:%m-%d} "
                 f"room={data.room_number} {data.total_amount}")
    elif isinstance(event, RoomEvent):
        text += f" v{data.version} {data.room_type} {data.status} guest={data.reservation_id}"
    elif isinstance(event, CheckinCheckoutEvent):
        text += f" room={data.room_id}"
        if data.actual_checkout_time is not None:
            text += f" left {data.actual_checkout_time:%m-%d %H:%M}"
    elif isinstance(event, CustomerEvent):
        text += f" v{data.version} {data.updated_fields}"
    return f"{text} #{str(event.event_id)[:8]}"


class Events(list[HotelEvent]):
    """A list of events that hypothesis reports one line per event."""

    def __repr__(self) -> str:
        return "[\n" + "".join(f"  {n:3}  {describe(e)}\n" for n, e in enumerate(self)) + "]"


# --- replaying ------------------------------------------------------------------------


def replay(events: Iterable[HotelEvent], rules: RuleSettings, state: State | None = None,
           after_each: Callable[[State, Step], None] | None = None) -> tuple[State, list[Step]]:
    state = dict(state or {})
    steps = []
    for event in events:
        step = apply_event(event, lambda tag, k: state.get((tag, k)), rules)
        state.update(step.changes)
        steps.append(step)
        if after_each is not None:
            after_each(state, step)
    return state, steps


def picture(state: State) -> dict[tuple[str, bytes], Any]:
    """What a hotel knows, without the bookkeeping of which events came last.

    `applied` lists the entity's latest event ids in delivery order, which differs between
    orders by design; a night whose counts are all zero answers like one never counted.
    """
    found: dict[tuple[str, bytes], Any] = {}
    for (tag, k), value in state.items():
        if tag == WAITING:
            if value.events:  # nothing may be left waiting
                found[tag, k] = [kept.event.event_id for kept in value.events]
        elif tag == AVAILABILITY:
            found[tag, k] = (value.in_house, {
                night: (counts.sold, counts.out_of_order)
                for night, counts in value.nights.items() if counts.sold or counts.out_of_order})
        else:
            found[tag, k] = value.model_dump(exclude={"applied"})
    return found


def differences(one: State, other: State) -> list[str]:
    a, b = picture(one), picture(other)
    return [f"{tag} {k!r}: {a.get((tag, k))!r}\n   != {b.get((tag, k))!r}"
            for tag, k in sorted({*a, *b}) if a.get((tag, k)) != b.get((tag, k))]


# --- a simulated hotel day ------------------------------------------------------------


@dataclass
class Day:
    setup: Events = field(default_factory=Events)
    """Rooms and customers the hotel had before the day: applied first, in order."""
    streams: list[Events] = field(default_factory=list)
    """Each entity's events in its own order: a room, a customer, a booking, the movements
    of one stay (the check-in/out topic, which may overtake the booking)."""

    def in_order(self) -> Events:
        events = [event for stream in self.streams for event in stream]
        return Events(sorted(events, key=lambda event: event.occurred_at))

    def __repr__(self) -> str:
        streams = "".join(f"  stream {n}: {stream!r}\n"
                          for n, stream in enumerate(self.streams) if stream)
        return f"Day(setup={self.setup!r},\n{streams})"


class Versions:
    """Each system's own version counter per entity."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], int] = {}

    def next(self, entity: str, system: System, start: int = 1) -> int:
        version = self.seen.get((entity, system), start - 1) + 1
        self.seen[entity, system] = version
        return version


BOOKING_SYSTEMS = st.sampled_from([System.HOTEL_SAAS, System.HOTEL_MEMBER, System.HOTEL_PMS])
BOOKED = st.sampled_from(["tentative", "confirmed", "guaranteed"])
AMOUNTS = st.sampled_from(["18000", "29000.500", "31000", "0"])


@st.composite
def nights_within(draw: st.DrawFn, first: date, end: date) -> tuple[date, date]:
    """A check-in and check-out date with at least one night, inside [first, end)."""
    span = (end - first).days
    start = draw(st.integers(0, span - 1))
    stop = draw(st.integers(start + 1, span))
    return first + timedelta(days=start), first + timedelta(days=stop)


@st.composite
def days(draw: st.DrawFn) -> Day:
    """A consistent stretch of days: every booking fits a room of its type on every night,
    whichever of its versions counts, so no delivery order can make one of them overbooked.

    Each room has a timeline of stays, each in an envelope of nights of its own that every
    version of its dates keeps inside; a night a room hosts nobody may be reported out of
    order by hotel-pms (at any time, also while a guest is still in). Booking news always
    precedes the end of its stay; stays end by check-out (early or on the day), no-show or
    cancellation, or are still in house at the end.
    """
    day = Day()
    versions = Versions()
    setup_clock = moment(date(2026, 11, 1), 8)
    rooms: dict[str, str] = {}
    for room_type, count in (("DBL", draw(st.integers(1, 3))), ("TWN", draw(st.integers(1, 2)))):
        for number in range(count):
            room_id = f"RM-{room_type}{number}"
            rooms[room_id] = room_type
            setup_clock += timedelta(minutes=1)
            day.setup.append(make(EventKind.ROOM, room_id, setup_clock, action="status_changed",
                                  room_number=room_id[3:], room_type=room_type,
                                  status="vacant_clean", version=1, maintenance_notes=None,
                                  availability_date=OPENING.isoformat()))
    customers = [f"C{n}" for n in range(draw(st.integers(1, 3)))]
    for customer in customers:
        setup_clock += timedelta(minutes=1)
        updatable = draw(st.booleans())
        day.setup.append(make(EventKind.CUSTOMER, customer, setup_clock, action="created",
                              version=1, updatable_by_pms=updatable, updated_fields=[]))
        stream = Events()
        pms_first = draw(st.sampled_from([1, 2**62]))
        for minutes in sorted(draw(st.sets(st.integers(0, 17 * 24 * 60), max_size=3))):
            when = moment(date(2026, 11, 2), 0, minutes)
            if updatable and draw(st.booleans()):
                stream.append(make(
                    EventKind.CUSTOMER, customer, when, system=System.HOTEL_PMS,
                    action="updated", version=versions.next(customer, System.HOTEL_PMS,
                                                            pms_first),
                    email=f"{customer}.{minutes}@example.com", updated_fields=["email"]))
            else:
                stream.append(make(
                    EventKind.CUSTOMER, customer, when, action="points_changed",
                    version=versions.next(customer, System.HOTEL_MEMBER, 2),
                    total_points=minutes, updated_fields=["total_points"]))
        day.streams.append(stream)

    stays = 0
    for room_id, room_type in rooms.items():
        reports: list[tuple[datetime, dict[str, Any]]] = []
        """What hotel-pms reports about this room: (when, payload), versioned in time order."""
        hosted: set[date] = set()
        free_from = OPENING
        for _ in range(draw(st.integers(1, 3))):
            start = free_from + timedelta(days=draw(st.integers(0, 2)))
            end = start + timedelta(days=draw(st.integers(1, 3)))
            if end > LAST_NIGHT + timedelta(days=1):
                break
            free_from = end
            hosted |= {start + timedelta(days=n) for n in range((end - start).days)}
            stays += 1
            reservation_id = f"B{stays}"
            guest = draw(st.sampled_from([*customers, None]))
            # A booking that names a room names the one the guest gets: a booking update
            # delivered after the check-in still overwrites the stay's room number with
            # the booking's (test_step.py::test_the_stays_room_is_the_one_checked_into_...).
            room_number = draw(st.sampled_from([None, room_id[3:]]))
            bookings = Events()

            def booking(when: datetime, action: str, status: str, dates: tuple[date, date],
                        rid: str = reservation_id, customer_id: str | None = guest,
                        number: str | None = room_number, kind: str = room_type) -> Any:
                system = draw(BOOKING_SYSTEMS)
                return make(EventKind.RESERVATION, rid, when, system=system, action=action,
                            status=status, version=versions.next(rid, system),
                            room_type=kind, room_number=number, customer_id=customer_id,
                            checkin_date=dates[0].isoformat(),
                            checkout_date=dates[1].isoformat(), total_amount=draw(AMOUNTS))

            fate = draw(st.sampled_from(["booked", "cancelled", "no_show", "stayed", "stayed",
                                         "in_house"]))
            arrives = fate in ("no_show", "stayed", "in_house")
            booked_at = moment(date(2026, 11, 1), 9, draw(st.integers(0, 10 * 24 * 60)))
            dates = draw(nights_within(start, end))
            first = draw(st.sampled_from(["tentative", "confirmed", "guaranteed",
                                          "waitlisted"]))
            bookings.append(booking(booked_at, "created", first, dates))
            if draw(st.booleans()) or (first == "waitlisted" and arrives):
                updated_at = booked_at + timedelta(minutes=draw(st.integers(1, 24 * 60)))
                dates = draw(nights_within(start, end))
                bookings.append(booking(updated_at, "updated", draw(BOOKED), dates))
            arrival, departure = dates
            movements = Events()
            if fate == "cancelled":
                bookings.append(booking(bookings[-1].occurred_at + timedelta(minutes=5),
                                        "cancelled", "cancelled", dates))
            elif fate == "no_show":
                movements.append(make(
                    EventKind.CHECKIN_CHECKOUT, reservation_id,
                    moment(arrival + timedelta(days=1), 2, draw(st.integers(0, 60))),
                    action="no_show", room_id=room_id, room_number=room_id[3:],
                    actual_checkin_time=None, actual_checkout_time=None,
                    payment_status="pending"))
            elif fate in ("stayed", "in_house"):
                checked_in = moment(arrival, 15, draw(st.integers(0, 120)))
                movements.append(make(
                    EventKind.CHECKIN_CHECKOUT, reservation_id, checked_in,
                    action="checked_in", room_id=room_id, room_number=room_id[3:],
                    actual_checkin_time=checked_in, actual_checkout_time=None,
                    payment_status="pending"))
                if draw(st.booleans()):  # the folio grows while the guest is in
                    bookings.append(booking(
                        checked_in + timedelta(minutes=draw(st.integers(1, 60))),
                        "updated", "confirmed", dates))
                if draw(st.booleans()):  # housekeeping, naming the guest
                    reports.append((moment(arrival, 20, draw(st.integers(0, 60))), {
                        "status": "occupied_dirty", "reservation_id": reservation_id,
                        "availability_date": arrival.isoformat()}))
                if fate == "stayed":
                    left = arrival + timedelta(days=draw(st.integers(
                        1, (departure - arrival).days)))
                    checked_out = moment(left, 8, draw(st.integers(0, 120)))
                    movements.append(make(
                        EventKind.CHECKIN_CHECKOUT, reservation_id, checked_out,
                        action="checked_out", room_id=room_id, room_number=room_id[3:],
                        actual_checkin_time=checked_in, actual_checkout_time=checked_out,
                        additional_charges=draw(AMOUNTS), payment_status="completed"))
                    if draw(st.booleans()):
                        reports.append((
                            checked_out + timedelta(minutes=draw(st.integers(60, 180))),
                            {"status": draw(st.sampled_from(["inspected", "vacant_clean"])),
                             "availability_date": left.isoformat()}))
                else:
                    free_from = LAST_NIGHT + timedelta(days=2)  # nobody else in this room
            day.streams += [bookings, movements]
        idle = sorted({OPENING + timedelta(days=n) for n in range(8)} - hosted)
        out_of_order: bool = draw(st.booleans())
        if idle and out_of_order:
            out = draw(st.sampled_from(idle))
            # Reported at a half minute (no other event is), any time up to that night.
            reported = moment(date(2026, 11, 15), 0, draw(st.integers(
                0, (out - date(2026, 11, 15)).days * 24 * 60))) + timedelta(seconds=30)
            reports.append((reported, {"status": "out_of_order",
                                       "availability_date": out.isoformat()}))
            if draw(st.booleans()):
                reports.append((reported + timedelta(minutes=draw(st.integers(1, 600))),
                                {"status": "inspected", "availability_date": out.isoformat()}))
        room_stream = Events()
        for version, (when, payload) in enumerate(sorted(reports, key=lambda r: r[0]), 2):
            room_stream.append(make(EventKind.ROOM, room_id, when, action="status_changed",
                                    room_number=room_id[3:], room_type=room_type,
                                    maintenance_notes=None, version=version, **payload))
        day.streams.append(room_stream)
    return day


class Order(Events):
    """A delivery order; `resent` holds the positions of redeliveries."""

    resent: set[int]


@st.composite
def deliveries(draw: st.DrawFn, day: Day) -> Order:
    """`day`'s events interleaved at random, each stream in its own order (so a stay's
    check-in/out may overtake any of its booking's versions), then some delivered again
    anywhere after their first delivery."""
    heads = [0] * len(day.streams)
    order = Order()
    while True:
        ready = [n for n, stream in enumerate(day.streams) if heads[n] < len(stream)]
        if not ready:
            break
        # First candidate: the next event in time, so shrinking heads for the in-order day.
        ready.sort(key=lambda n: day.streams[n][heads[n]].occurred_at)
        chosen = ready[draw(st.integers(0, len(ready) - 1))]
        order.append(day.streams[chosen][heads[chosen]])
        heads[chosen] += 1
    resent: list[bool] = [False] * len(order)
    for _ in range(draw(st.integers(0, 8)) if order else 0):
        original = draw(st.integers(0, len(order) - 1))
        position = draw(st.integers(original + 1, len(order)))
        order.insert(position, order[original])
        resent.insert(position, True)
    order.resent = {index for index, again in enumerate(resent) if again}
    return order


@PROPERTY
@given(st.data())
def test_any_delivery_order_and_redelivery_ends_in_the_in_order_state(data: st.DataObject
                                                                      ) -> None:
    day = data.draw(days(), label="day")
    rules = RuleSettings()
    start, setup_steps = replay(day.setup, rules)
    assert not [step.refusals for step in setup_steps if step.refusals]
    expected, in_order_steps = replay(day.in_order(), rules, start)
    assert not [r.reason for step in in_order_steps for r in step.refusals], (
        "the simulated day is consistent: nothing in it is refused when delivered in order")

    order = data.draw(deliveries(day), label="delivery order")
    resent = order.resent
    found, steps = replay(order, rules, start)
    problems = differences(found, expected)
    assert not problems, "\n".join(problems)
    refused = [(index, r.reason) for index, step in enumerate(steps) for r in step.refusals
               if index not in resent]
    assert not refused, f"only resends may be refused (as stale), not first deliveries: {refused}"
    for index in resent:
        step = steps[index]
        assert step.changes == {} and not step.room_events, "a resend changes nothing"


@PROPERTY
@given(st.data())
def test_rooms_and_customers_read_after_what_needs_them_are_waited_for(
        data: st.DataObject) -> None:
    """A backlog read across partitions can deliver a room, room type or customer after
    the bookings, check-ins and updates that need it: within the grace they wait for it,
    none is refused for it and none is left waiting. (Which bookings fit may differ while
    only some rooms of a type are known: overbooking is decided on what is known.)"""
    day = data.draw(days(), label="day")
    rules = RuleSettings(order_grace_s=10**8)
    merged = list(data.draw(deliveries(day), label="delivery order"))
    for event in reversed(day.setup):  # anywhere before its own entity's next event
        key = (event.type, record_key(event))
        first = next((index for index, later in enumerate(merged)
                      if (later.type, record_key(later)) == key), len(merged))
        merged.insert(data.draw(st.integers(0, first), label=f"{key} at"), event)
    found, steps = replay(merged, rules)
    unknown = [refusal.reason for step in steps for refusal in step.refusals
               if refusal.reason_code is RefusalReason.UNKNOWN_ENTITY]
    assert not unknown, unknown
    left = [value.events for (tag, _), value in found.items() if tag == WAITING]
    assert not any(left), left


# --- (b) no night sold beyond the allowance -----------------------------------------


ALLOWANCES = st.one_of(
    st.just({}),
    st.builds(lambda raw: {HOTEL: {"DBL": raw}}, st.sampled_from(["0", "1", "2"])),
    st.builds(lambda raw: {"*": {"*": raw}}, st.sampled_from(["50%", "100%", "34%", "1"])),
)


@st.composite
def crowded_days(draw: st.DrawFn) -> tuple[Events, Events]:
    """Rooms, and more bookings than they hold: (rooms, day's events) in time order."""
    rooms = Events()
    room_ids: dict[str, list[str]] = {}
    clock = moment(date(2026, 11, 1), 8)
    for room_type, count in (("DBL", draw(st.integers(1, 2))), ("TWN", draw(st.integers(0, 1)))):
        for number in range(count):
            room_id = f"RM-{room_type}{number}"
            room_ids.setdefault(room_type, []).append(room_id)
            clock += timedelta(minutes=1)
            rooms.append(make(EventKind.ROOM, room_id, clock, action="status_changed",
                              room_number=room_id[3:], room_type=room_type,
                              status="vacant_clean", version=1, maintenance_notes=None))
    events = Events()
    versions = Versions()
    for stay in range(draw(st.integers(2, 9))):
        reservation_id = f"B{stay}"
        room_type = draw(st.sampled_from(["DBL", "DBL", "TWN"]))
        booked_at = moment(date(2026, 11, 2), 0, draw(st.integers(0, 7 * 24 * 60)))
        dates = draw(nights_within(OPENING, OPENING + timedelta(days=5)))

        def booking(when: datetime, status: str, dates: tuple[date, date],
                    rid: str = reservation_id, kind: str = room_type) -> Any:
            system = draw(BOOKING_SYSTEMS)
            return make(EventKind.RESERVATION, rid, when, system=system,
                        status=status, version=versions.next(rid, system), room_type=kind,
                        checkin_date=dates[0].isoformat(), checkout_date=dates[1].isoformat())

        events.append(booking(booked_at, draw(st.sampled_from(
            ["tentative", "confirmed", "guaranteed", "waitlisted"])), dates))
        for step in range(draw(st.integers(0, 2))):
            dates = draw(nights_within(OPENING, OPENING + timedelta(days=5)))
            events.append(booking(booked_at + timedelta(minutes=step + 1), draw(st.sampled_from(
                ["confirmed", "guaranteed", "cancelled"])), dates))
        fate = draw(st.sampled_from(["booked", "no_show", "stayed", "in_house"]))
        arrival, departure = dates
        room_id = draw(st.sampled_from(room_ids.get(room_type) or ["RM-NONE"]))
        checked_in = moment(arrival, 15)
        if fate == "no_show":
            events.append(make(EventKind.CHECKIN_CHECKOUT, reservation_id,
                               moment(arrival + timedelta(days=1), 2), action="no_show",
                               room_id=room_id, room_number=room_id[3:],
                               actual_checkin_time=None, actual_checkout_time=None))
        elif fate in ("stayed", "in_house"):
            events.append(make(EventKind.CHECKIN_CHECKOUT, reservation_id, checked_in,
                               action="checked_in", room_id=room_id, room_number=room_id[3:],
                               actual_checkin_time=checked_in, actual_checkout_time=None))
        if fate == "stayed":
            left = arrival + timedelta(days=draw(st.integers(0, (departure - arrival).days + 1)))
            checked_out = moment(left, 9)
            events.append(make(EventKind.CHECKIN_CHECKOUT, reservation_id, checked_out,
                               action="checked_out", room_id=room_id, room_number=room_id[3:],
                               actual_checkin_time=checked_in,
                               actual_checkout_time=checked_out))
    return rooms, Events(sorted(events, key=lambda event: event.occurred_at))


def check_inventory(rules: RuleSettings) -> Callable[[State, Step], None]:
    def check(state: State, step: Step) -> None:
        stays = [value for (tag, _), value in state.items() if tag == STAY]
        rooms: list[RoomState] = [value for (tag, _), value in state.items() if tag == ROOM]
        for (tag, _), inventory in state.items():
            if tag != AVAILABILITY:
                continue
            assert isinstance(inventory, AvailabilityState)
            allowance = rules.allowance(inventory.hotel_id, inventory.room_type,
                                        inventory.in_house)
            if not rules.overbooking:
                assert allowance == 0
            assert inventory.in_house == sum(
                1 for room in rooms if room.room_type == inventory.room_type)
            for night, counts in inventory.nights.items():
                free = inventory.free(night)
                assert free >= -allowance, (
                    f"{inventory.room_type} on {night}: free {free}, allowance {allowance}, "
                    f"after {step.event.type} {step.event.action} of {step.event.data}")
                holding = sum(held_nights(stay).get((inventory.room_type, night), 0)
                              for stay in stays)
                assert counts.sold == holding, (
                    f"{inventory.room_type} on {night}: {counts.sold} sold, but {holding} "
                    "stays hold it")
    return check


@PROPERTY
@given(st.data())
def test_no_night_is_sold_beyond_the_allowance_whatever_the_order(data: st.DataObject
                                                                  ) -> None:
    overbooking = data.draw(ALLOWANCES, label="overbooking")
    rules = RuleSettings(overbooking=overbooking)
    rooms, events = data.draw(crowded_days(), label="day")
    everything = [*rooms, *events]
    positions = data.draw(st.permutations(range(len(everything))), label="order")
    for _ in range(data.draw(st.integers(0, 6), label="resends")):
        original = data.draw(st.integers(0, len(positions) - 1))
        positions.insert(data.draw(st.integers(original + 1, len(positions))),
                         positions[original])
    replay([everything[n] for n in positions], rules, after_each=check_inventory(rules))
    # In time order the same day must hold the same invariant.
    replay([*rooms, *events], rules, after_each=check_inventory(rules))


# --- (c) values beyond the limits ------------------------------------------------------


def bypassing(event: HotelEvent, how: str, **data: Any) -> Any:
    """`event` with payload fields replaced without validation, as a producer other than
    the hub's publisher might: through `model_construct` or `model_copy`."""
    if how == "construct":
        payload = type(event.data).model_construct(**{**dict(event.data), **data})
        return type(event).model_construct(**{**dict(event), "data": payload})
    return event.model_copy(update={"data": event.data.model_copy(update=data)})


def base_hotel(rules: RuleSettings) -> State:
    when = moment(date(2026, 11, 1), 8)
    events = [
        make(EventKind.ROOM, "RM-1", when, action="status_changed", room_number="1",
             room_type="DBL", status="vacant_clean", version=1),
        make(EventKind.ROOM, "RM-2", when + timedelta(minutes=1), action="status_changed",
             room_number="2", room_type="DBL", status="vacant_clean", version=1),
        make(EventKind.CUSTOMER, "C1", when + timedelta(minutes=2), action="created",
             version=1, updatable_by_pms=True, updated_fields=[]),
        make(EventKind.RESERVATION, "B1", when + timedelta(minutes=3), room_type="DBL",
             checkin_date="2026-11-23", checkout_date="2026-11-25"),
        make(EventKind.CHECKIN_CHECKOUT, "B1", moment(date(2026, 11, 23), 15),
             action="checked_in", room_id="RM-1", room_number="1",
             actual_checkin_time=moment(date(2026, 11, 23), 15), actual_checkout_time=None),
    ]
    state, steps = replay(events, rules)
    assert not [step.refusals for step in steps if step.refusals]
    return state


NEGATIVE = st.decimals(min_value=Decimal("-999999999999"), max_value=Decimal("-0.001"),
                       places=3, allow_nan=False, allow_infinity=False)
TEXT_FIELDS = st.sampled_from([
    (EventKind.ROOM, "maintenance_notes"), (EventKind.CUSTOMER, "name"),
    (EventKind.CUSTOMER, "email"), (EventKind.CUSTOMER, "phone"),
    (EventKind.CUSTOMER, "rank_id"), (EventKind.RESERVATION, "room_number"),
])
ENVELOPE_TEXT = st.sampled_from(["correlation_id", "causation_id", "origin_system"])


@st.composite
def bad_events(draw: st.DrawFn, limits: Limits) -> tuple[HotelEvent, str]:
    """An event beyond `limits`, and the field path that must be named."""
    when = moment(date(2026, 11, 22), draw(st.integers(0, 23)))
    entity = draw(st.sampled_from(["B1", "B2"]))
    how = draw(st.sampled_from(["construct", "copy"]))
    booking = make(EventKind.RESERVATION, entity, when, room_type="DBL", version=7,
                   action="updated", checkin_date="2026-11-23", checkout_date="2026-11-25")
    kind = draw(st.sampled_from(["money", "stay", "text", "envelope", "list"]))
    if kind == "money":
        amount = draw(NEGATIVE)
        choice = draw(st.sampled_from(["total_amount", "base_price", "additional_charges"]))
        if choice == "total_amount":
            return bypassing(booking, how, total_amount=amount), "data.total_amount"
        if choice == "base_price":
            room = make(EventKind.ROOM, draw(st.sampled_from(["RM-1", "RM-9"])), when,
                        room_type="DBL", version=5)
            return bypassing(room, how, base_price=amount), "data.base_price"
        check_out = make(EventKind.CHECKIN_CHECKOUT, "B1", moment(date(2026, 11, 25), 9),
                         room_id="RM-1", room_number="1",
                         actual_checkin_time=moment(date(2026, 11, 23), 15),
                         actual_checkout_time=moment(date(2026, 11, 25), 9))
        return bypassing(check_out, how, additional_charges=amount), "data.additional_charges"
    if kind == "stay":
        nights = limits.max_stay_nights + draw(st.integers(1, 80_000))
        checkin = date(2026, 11, 23)
        checkout = checkin + timedelta(days=nights)
        if draw(st.booleans()):
            return make(EventKind.RESERVATION, entity, when, room_type="DBL", version=7,
                        action="updated", checkin_date=checkin.isoformat(),
                        checkout_date=checkout.isoformat(), limits=ROOMY), "data.checkout_date"
        return bypassing(booking, how, checkout_date=checkout), "data.checkout_date"
    length = limits.max_text_length + draw(st.integers(1, 3000))
    text = draw(st.sampled_from(["x", "é", "😀", "\u0000"])) * length
    if kind == "text":
        event_kind, name = draw(TEXT_FIELDS)
        if event_kind is EventKind.RESERVATION:
            return bypassing(booking, how, room_number=text), f"data.{name}"
        if event_kind is EventKind.ROOM:
            room = make(EventKind.ROOM, "RM-2", when, room_type="DBL", version=5,
                        maintenance_notes=text, limits=ROOMY)
            return room, f"data.{name}"
        customer = make(EventKind.CUSTOMER, "C1", when, version=5, action="updated",
                        updated_fields=[], limits=ROOMY)
        return bypassing(customer, how, **{name: text}), f"data.{name}"
    if kind == "envelope":
        name = draw(ENVELOPE_TEXT)
        if how == "construct":
            return type(booking).model_construct(**{**dict(booking), name: text}), name
        return booking.model_copy(update={name: text}), name
    items = limits.max_list_length + draw(st.integers(1, 50))
    if draw(st.booleans()):
        customer = make(EventKind.CUSTOMER, "C1", when, version=5, action="updated",
                        updated_fields=[], limits=ROOMY)
        return bypassing(customer, how, updated_fields=["email"] * items), "data.updated_fields"
    return booking.model_copy(update={"targets": ["hotel-pms"] * items}), "targets"


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_values_beyond_the_limits_are_refused_and_change_nothing(data: st.DataObject) -> None:
    limits = Limits(max_stay_nights=data.draw(st.integers(2, 400), label="max nights"),
                    max_text_length=data.draw(st.integers(40, 1000), label="max text"),
                    max_list_length=data.draw(st.integers(3, 100), label="max items"))
    rules = RuleSettings(limits=limits)
    state = base_hotel(rules)
    event, path = data.draw(bad_events(limits), label="event")
    before = dict(state)
    step = apply_event(event, lambda tag, k: state.get((tag, k)), rules)
    assert [refusal.reason_code for refusal in step.refusals] == [RefusalReason.INVALID_VALUE]
    assert path in step.refusals[0].reason
    assert step.changes == {} and not step.room_events and not step.duplicate
    assert state == before
