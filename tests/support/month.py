"""A simulated calendar month of one hotel, in the order its systems publish the events.

Reports are checked over a month of bookings, changes, cancellations, no-shows, stays cut
short, repairs and late news, so the generator makes all of them, deterministically per
seed, and only events the hub accepts: a refused event would make the hub's figures and
an oracle's disagree for a reason no report definition covers.

How it stays valid: every stay is given a physical room first, and a room's nights are
never given twice (not even after a cancellation, a no-show or an early departure frees
them, nor on a night the room is out of order), so no room type is ever oversold in any
publish order. Rooms and customers come before the first booking; each booking's changes
come before its arrival; a check-out follows its check-in.

Timing notes:
- Rooms are created (occurred_at) 50 days before `first`, a few days before the earliest
  booking (bookings are made up to 45 days ahead, and the hub refuses a booking of a room
  type with no rooms yet); their `availability_date` is `first`, so supply starts then.
- Late events: about 2 % of check-ins are published 3 to 8 hours after they happened (the
  front desk's terminal was offline), so they come later in the list than events that
  happened after them, yet always before their own check-out.
- Every stay that arrives in the month runs its course, so check-outs of stays that end
  in the next month are in the list too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from streams.core.kinds import System
from streams.core.simulation import ORIGINS, RANKS, ROOM_TYPES, SimulatedEvent

NIGHTS = (1, 2, 3, 4, 5, 6, 7)
NIGHT_WEIGHTS = (30, 25, 18, 10, 7, 5, 5)
GAP = 0.2
"""Chance a room stays empty one night before its next stay (about 90 % of nights booked)."""
OUT_OF_ORDER_ROOMS = 0.12
"""Share of rooms that have one out-of-order spell (1 to 4 nights) in the month."""
CANCEL, NO_SHOW, UPDATE, EARLY, LATE = 0.08, 0.03, 0.15, 0.06, 0.02
BOOKERS = (System.HOTEL_PMS, System.HOTEL_MEMBER, System.HOTEL_SAAS)
ZERO_DECIMAL = frozenset({"JPY", "KRW"})


class _Feed:
    """The events made so far, each with the moment it is published, and the hotel's clock."""

    def __init__(self, hotel_id: str, zone: ZoneInfo, rng: random.Random) -> None:
        self.hotel_id, self.zone, self.rng = hotel_id, zone, rng
        self.queue: list[tuple[datetime, int, SimulatedEvent]] = []

    def at(self, day: date, minute_of_day: int) -> datetime:
        return datetime.combine(day, time(minute_of_day // 60, minute_of_day % 60), self.zone)

    def between(self, day: date, start: int, end: int) -> datetime:
        """A moment on `day` between minutes-of-day `start` and `end` (inclusive)."""
        return self.at(day, self.rng.randint(start, end))

    def emit(self, system: System, kind: str, action: str, moment: datetime,
             data: dict[str, Any], correlation_id: str | None = None,
             published: datetime | None = None) -> None:
        """One event, published at `moment` unless `published` says later."""
        self.queue.append((published or moment, len(self.queue), SimulatedEvent(system, {
            "type": kind, "action": action, "hotel_id": self.hotel_id, "occurred_at": moment,
            "correlation_id": correlation_id, "data": data,
        })))

    def in_publish_order(self) -> list[SimulatedEvent]:
        return [event for _, _, event in sorted(self.queue, key=lambda item: item[:2])]


@dataclass(frozen=True)
class _Room:
    room_id: str
    number: str
    room_type: str


@dataclass(frozen=True)
class _Stay:
    reservation_id: str
    room: _Room
    checkin: date
    nights: int


def _unit(currency: str) -> Decimal:
    return Decimal(1) if currency in ZERO_DECIMAL else Decimal("0.01")


def _money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(_unit(currency), rounding=ROUND_HALF_UP)


def _nightly(room_type: str, currency: str) -> Decimal:
    """A night's list price: yen as in `simulation.ROOM_TYPES`, else a hundredth of it."""
    base = ROOM_TYPES[room_type]
    return base if currency in ZERO_DECIMAL else base / 100


def hotel_month(
    *, hotel_id: str, timezone: str, currency: str, first: date, rooms: int = 120,
    seed: int = 11,
) -> list[SimulatedEvent]:
    """The month starting at `first` (a 1st) of one hotel, events in publish order; the same
    for the same hotel_id and seed."""
    if first.day != 1:
        raise ValueError(f"a month starts on a 1st, not on {first.isoformat()}")
    rng = random.Random(f"{hotel_id}:{seed}")  # two hotels of one seed differ
    zone = ZoneInfo(timezone)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    feed = _Feed(hotel_id, zone, rng)
    emit, at, between = feed.emit, feed.at, feed.between

    # Rooms, created well before the first booking; supply from `first`.
    room_list = [
        _Room(f"{hotel_id}-R{floor}{index:02d}", f"{floor}{index:02d}",
              rng.choice(list(ROOM_TYPES)))
        for floor in range(2, 2 + (rooms + 9) // 10)
        for index in range(1, 11)
    ][:rooms]
    versions = dict.fromkeys((room.room_id for room in room_list), 1)
    opened = first - timedelta(days=50)
    for minute, room in enumerate(room_list):
        # A room a second from 06:00 on: a 1,200-room house stays within the morning.
        emit(System.HOTEL_PMS, "room", "status_changed",
             at(opened, 6 * 60) + timedelta(seconds=minute), {
            "room_id": room.room_id, "room_number": room.number, "room_type": room.room_type,
            "status": "inspected", "availability_date": first.isoformat(),
            "base_price": str(_nightly(room.room_type, currency)), "currency": currency,
            "version": 1,
        })

    customer_ids = [f"{hotel_id}-C{index:05d}" for index in range(rooms * 4)]
    enrolled = first - timedelta(days=49)
    for index, customer_id in enumerate(customer_ids):
        emit(System.HOTEL_MEMBER, "customer", "created", at(enrolled, 7 * 60 + index % 600), {
            "customer_id": customer_id, "name": f"Guest {index}",
            "email": f"guest{index}@example.com", "phone": f"+81-3-5555-{index:04d}",
            "rank_id": rng.choice(RANKS), "total_points": rng.randrange(0, 20000, 10),
            "updated_fields": ["name", "email", "phone", "rank_id", "total_points"],
            "updatable_by_pms": True, "version": 1,
        })

    # Out-of-order spells on some rooms, then stays around them: one room never holds two.
    spells: dict[str, tuple[date, int]] = {}
    for room in rng.sample(room_list, max(1, round(rooms * OUT_OF_ORDER_ROOMS))):
        start = rng.choice(days)
        spells[room.room_id] = (start, min(rng.randint(1, 4), (last - start).days + 1))
    stays: list[_Stay] = []
    for room in room_list:
        spell = spells.get(room.room_id)
        cursor = first
        while cursor <= last:
            if spell is not None and spell[0] <= cursor < spell[0] + timedelta(days=spell[1]):
                cursor = spell[0] + timedelta(days=spell[1])
                continue
            if rng.random() < GAP:
                cursor += timedelta(days=1)
                continue
            nights = rng.choices(NIGHTS, NIGHT_WEIGHTS)[0]
            if spell is not None and cursor < spell[0]:
                nights = min(nights, (spell[0] - cursor).days)
            stays.append(_Stay(f"{hotel_id}-B{len(stays):05d}", room, cursor, nights))
            cursor += timedelta(days=nights)

    for room_id, (start, length) in sorted(spells.items()):
        room = next(room for room in room_list if room.room_id == room_id)
        spell_days = [start + timedelta(days=n) for n in range(length + 1)]
        for index, day in enumerate(spell_days):
            versions[room_id] += 1
            out = index < length
            emit(System.HOTEL_PMS, "room", "maintenance_updated" if out else "status_changed",
                 between(day, 12 * 60, 13 * 60 + 30), {
                     "room_id": room_id, "room_number": room.number,
                     "room_type": room.room_type,
                     "status": "out_of_order" if out else "inspected",
                     "availability_date": day.isoformat(),
                     "base_price": str(_nightly(room.room_type, currency)), "currency": currency,
                     "maintenance_notes": "air conditioning repair" if out else None,
                     "version": versions[room_id],
                 })

    for stay in stays:
        _stay_events(feed, stay, customer_ids, currency)
    return feed.in_publish_order()


def _stay_events(feed: _Feed, stay: _Stay, customer_ids: list[str], currency: str) -> None:
    """Booking, its changes, and the guest's arrival and departure (or not)."""
    rng, emit, between = feed.rng, feed.emit, feed.between
    reservation_id, room, checkin = stay.reservation_id, stay.room, stay.checkin
    checkout = checkin + timedelta(days=stay.nights)
    customer_id = rng.choice(customer_ids)
    factor = Decimal(rng.randint(850, 1250)) / 1000
    amount = _money(_nightly(room.room_type, currency) * stay.nights * factor, currency)
    booking: dict[str, Any] = {
        "reservation_id": reservation_id, "customer_id": customer_id,
        "room_type": room.room_type, "room_number": room.number,
        "checkin_date": checkin.isoformat(), "checkout_date": checkout.isoformat(),
        "total_amount": str(amount), "currency": currency, "origin": rng.choice(ORIGINS),
    }
    booker: System = rng.choice(BOOKERS)
    booked = between(checkin - timedelta(days=rng.randint(1, 45)), 8 * 60, 20 * 60)
    confirmed = booked + timedelta(minutes=rng.randint(1, 90))
    emit(booker, "reservation", "created", booked,
         {**booking, "status": "tentative", "version": 1}, reservation_id)
    emit(booker, "reservation", "confirmed", confirmed,
         {**booking, "status": "confirmed", "version": 2}, reservation_id)
    version, latest = 2, confirmed
    morning = between(checkin, 8 * 60, 8 * 60)

    def later() -> datetime:
        """A moment after the booking's latest change and before the arrival morning."""
        span = (morning - latest).total_seconds()
        return latest + timedelta(seconds=int(span * rng.uniform(0.1, 0.9)))

    if rng.random() < UPDATE:
        version, latest = version + 1, later()
        changed = _money(amount * Decimal(rng.randint(900, 1100)) / 1000, currency)
        booking["total_amount"] = str(changed)
        emit(booker, "reservation", "updated", latest,
             {**booking, "status": "confirmed", "version": version}, reservation_id)
    outcome = rng.random()
    if outcome < CANCEL:
        emit(booker, "reservation", "cancelled", later(),
             {**booking, "status": "cancelled", "version": version + 1}, reservation_id)
        return
    if outcome < CANCEL + NO_SHOW:
        emit(System.HOTEL_PMS, "checkin_checkout", "no_show",
             between(checkin, 23 * 60 + 35, 23 * 60 + 55), {
                 "reservation_id": reservation_id, "customer_id": customer_id,
                 "room_number": room.number, "payment_status": "pending",
             }, reservation_id)
        return
    departure = checkout
    if stay.nights >= 2 and rng.random() < EARLY:
        departure = checkin + timedelta(days=rng.randint(1, stay.nights - 1))
    arrived = between(checkin, 14 * 60, 23 * 60 + 30)
    left = between(departure, 6 * 60, 11 * 60 + 30)
    published = None
    if rng.random() < LATE:
        room_for = left - arrived - timedelta(minutes=30)
        published = arrived + min(timedelta(minutes=rng.randint(180, 480)), room_for)
    moved = {"reservation_id": reservation_id, "customer_id": customer_id,
             "room_number": room.number, "room_id": room.room_id}
    emit(System.HOTEL_PMS, "checkin_checkout", "checked_in", arrived, {
        **moved, "actual_checkin_time": arrived,
        "payment_status": rng.choice(("pending", "completed")),
    }, reservation_id, published)
    charges: Decimal | None = None
    if rng.random() >= 0.3:
        charges = Decimal(rng.randint(0, 15000)) * _unit(currency)
    emit(System.HOTEL_PMS, "checkin_checkout", "checked_out", left, {
        **moved, "actual_checkin_time": arrived, "actual_checkout_time": left,
        "additional_charges": None if charges is None else str(charges),
        "currency": currency, "payment_status": "completed",
    }, reservation_id)
