"""A realistic month of one 1,200-room hotel, as the hub's four source topics would carry it.

Deterministic (one seed): the rooms first, then, in event time, customers, bookings made
up to seven weeks ahead, booking changes, cancellations, no-shows, check-ins, check-outs,
housekeeping and maintenance (rooms out of order for a night or two), points after a stay.
About 57,000 events. Some spells are published out of order, as real systems do:

- walk-ins: the front desk sends the check-in a second before the booking (another topic);
- PMS outages: every hotel-pms event of a 90-minute window goes out at its end, after the
  other systems' events of that window (per entity the order is kept);
- new members whose `created` event comes half a minute after their first booking.

Nothing here is refused by the hub's rules (`streams.core.rules`, `streams.core.step`): the
inventory ledger never sells more than a room type has on any night, and it never resells
nights a cancellation or no-show gave back, so the stream stays valid whatever order the
partitions of different topics are read in (a cancellation read after a later booking
cannot make that booking an overbooking). `python -m bench.month` runs the stream through
the hub's pure step in publish order, offline, and prints the refusals (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from streams.core.kinds import POLICIES, EventKind, System
from streams.runners.publisher import HotelEventPublisher, PublishedEvent
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient

HOTEL = "HTL-MONTH-01"
TZ = ZoneInfo("Asia/Tokyo")
FIRST_NIGHT = date(2026, 12, 1)
NIGHTS = 30
ROOM_TYPES = {"DBL": (480, 18000), "TWN": (360, 21000), "SGL": (240, 12000), "STE": (120, 52000)}
"""Room type: (rooms, base price in JPY)."""
_IDS = uuid.UUID("0b9a4f0e-6a3c-4f61-9f7e-3b1d2a5c7e90")
ORIGINS = {System.HOTEL_SAAS: ("direct_web", "ota", "gds", "travel_agent", "corporate"),
           System.HOTEL_MEMBER: ("member_app",), System.HOTEL_PMS: ("phone", "email", "group")}


@dataclass
class Planned:
    """One event of the month: who sends it, its document, when it is published."""

    at: datetime
    """When it is published (event time, in publish order)."""
    system: System
    document: dict[str, Any]
    seq: int = 0

    @property
    def kind(self) -> EventKind:
        return EventKind(self.document["type"])

    @property
    def key(self) -> str:
        return str(self.document["data"][POLICIES[self.kind].entity_key])


@dataclass
class Stay:
    number: int
    system: System
    origin: str
    room_type: str
    arrive: date
    nights: int
    booked_at: datetime
    customer: str
    amount: int
    cancel_at: datetime | None = None
    no_show: bool = False
    walk_in: bool = False
    room: str | None = None

    @property
    def leave(self) -> date:
        return self.arrive + timedelta(days=self.nights)

    @property
    def reservation_id(self) -> str:
        return f"R{self.number:06d}"


@dataclass
class Month:
    rng: random.Random
    events: list[Planned] = field(default_factory=list)
    ledger: Counter[tuple[str, date]] = field(default_factory=Counter)
    """Nights taken per room type; never given back (see the module docstring)."""
    ids: int = 0

    def emit(self, at: datetime, system: System, kind: EventKind, action: str,
             data: dict[str, Any]) -> Planned:
        self.ids += 1
        document = {"type": kind.value, "action": action, "hotel_id": HOTEL,
                    "event_id": str(uuid.uuid5(_IDS, f"{self.ids}")),
                    "occurred_at": at.isoformat(), "data": data}
        planned = Planned(at, system, document, self.ids)
        self.events.append(planned)
        return planned

    def fits(self, room_type: str, nights: Sequence[date]) -> bool:
        rooms = ROOM_TYPES[room_type][0]
        return all(self.ledger[room_type, night] < rooms for night in nights)

    def take(self, room_type: str, nights: Sequence[date]) -> None:
        for night in nights:
            self.ledger[room_type, night] += 1


def _at(day: date, hour: float) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ) + timedelta(hours=hour)


def _nights(arrive: date, count: int) -> list[date]:
    return [arrive + timedelta(days=n) for n in range(count)]


def _room_id(room_type: str, index: int) -> str:
    return f"{room_type}-{index:04d}"


def _room_number(room_type: str, index: int) -> str:
    return f"{list(ROOM_TYPES).index(room_type) + 1}{index:03d}"


def _room_data(room_type: str, index: int, status: str, night: date,
               notes: str | None = None) -> dict[str, Any]:
    return {"room_id": _room_id(room_type, index), "room_number": _room_number(room_type, index),
            "room_type": room_type, "status": status, "availability_date": night.isoformat(),
            "base_price": f"{ROOM_TYPES[room_type][1]}.000", "currency": "JPY",
            "maintenance_notes": notes, "version": 0}


def _booking(stay: Stay, status: str) -> dict[str, Any]:
    return {"reservation_id": stay.reservation_id, "customer_id": stay.customer,
            "room_type": stay.room_type, "room_number": None,
            "checkin_date": stay.arrive.isoformat(), "checkout_date": stay.leave.isoformat(),
            "total_amount": f"{stay.amount}.000", "currency": "JPY", "status": status,
            "origin": stay.origin, "version": 0}


def _movement(stay: Stay, **data: Any) -> dict[str, Any]:
    room_type, index = (stay.room or "X-0").split("-")
    return {"reservation_id": stay.reservation_id, "customer_id": stay.customer,
            "room_number": _room_number(room_type, int(index)) if stay.room else "unassigned",
            "room_id": stay.room, "actual_checkin_time": None, "actual_checkout_time": None,
            "additional_charges": None, "currency": "JPY", "payment_status": "pending", **data}


def _plan_stays(month: Month, customers: int) -> list[Stay]:
    """Booking requests in the order they are made; those the ledger cannot hold are
    turned away (never published), so no night is ever sold beyond the rooms."""
    rng, requests = month.rng, []
    for day in range(NIGHTS):
        arrive = FIRST_NIGHT + timedelta(days=day)
        weekend = arrive.weekday() in (4, 5)
        for room_type, (rooms, price) in ROOM_TYPES.items():
            for _ in range(int(rooms * (0.52 if weekend else 0.39) * rng.uniform(0.9, 1.1))):
                walk_in = rng.random() < 0.02
                lead = 0 if walk_in else min(int(rng.expovariate(1 / 16)), 49)
                booked = _at(arrive - timedelta(days=lead),
                             rng.uniform(15, 21) if walk_in else rng.uniform(7, 23.5))
                system = (System.HOTEL_PMS if walk_in else rng.choices(
                    list(ORIGINS), weights=(6, 3, 1))[0])
                origin = "walk_in" if walk_in else rng.choice(ORIGINS[system])
                nights = rng.choices((1, 2, 3, 4, 5, 7), weights=(30, 30, 18, 10, 7, 5))[0]
                requests.append(Stay(0, system, origin, room_type, arrive, nights, booked,
                                     f"C{rng.randrange(customers):06d}",
                                     price * nights + rng.randrange(0, 3000), walk_in=walk_in))
    requests.sort(key=lambda stay: stay.booked_at)
    stays: list[Stay] = []
    for stay in requests:
        taken = _nights(stay.arrive, stay.nights)
        if not month.fits(stay.room_type, taken):
            continue
        month.take(stay.room_type, taken)
        stay.number = len(stays) + 1
        span = (_at(stay.arrive, 12) - stay.booked_at).total_seconds()
        if not stay.walk_in and span > 3600 and rng.random() < 0.12:
            stay.cancel_at = stay.booked_at + timedelta(seconds=rng.uniform(0.1, 0.95) * span)
        stay.no_show = not stay.walk_in and stay.cancel_at is None and rng.random() < 0.03
        stays.append(stay)
    return stays


def _book(month: Month, stays: list[Stay], first_booking: dict[str, datetime]) -> None:
    rng = month.rng
    for stay in stays:
        status = "tentative" if stay.system is System.HOTEL_SAAS and rng.random() < 0.1 else (
            "confirmed")
        created = month.emit(stay.booked_at, stay.system, EventKind.RESERVATION, "created",
                             _booking(stay, status))
        first_booking.setdefault(stay.customer, created.at)
        change_at = stay.cancel_at or max(_at(stay.arrive, 9), stay.booked_at)
        if status == "tentative" or rng.random() < 0.1:
            # Confirmed, or the amount changes, before the stay (or its cancellation).
            middle = stay.booked_at + (change_at - stay.booked_at) / 2
            stay.amount += 0 if status == "tentative" else rng.randrange(500, 4000)
            month.emit(middle, stay.system, EventKind.RESERVATION,
                       "confirmed" if status == "tentative" else "updated",
                       _booking(stay, "confirmed"))
        if stay.cancel_at is not None:
            month.emit(stay.cancel_at, stay.system, EventKind.RESERVATION, "cancelled",
                       _booking(stay, "cancelled"))


def _front_desk(month: Month, stays: list[Stay]) -> Counter[str]:
    """Day by day: check-outs, housekeeping, maintenance, check-ins, no-shows."""
    rng, pms = month.rng, System.HOTEL_PMS
    free = {room_type: set(range(rooms)) for room_type, (rooms, _) in ROOM_TYPES.items()}
    out: dict[tuple[str, int], date] = {}
    leaving: dict[date, list[Stay]] = {}
    arriving: dict[date, list[Stay]] = {}
    for stay in stays:
        if stay.cancel_at is None:
            arriving.setdefault(stay.arrive, []).append(stay)
    members: Counter[str] = Counter()
    for day in (FIRST_NIGHT + timedelta(days=n) for n in range(NIGHTS + 8)):
        for (room_type, index), until in list(out.items()):
            if until == day:  # back in service
                del out[room_type, index]
                free[room_type].add(index)
                month.emit(_at(day, 9), pms, EventKind.ROOM, "maintenance_updated",
                           _room_data(room_type, index, "vacant_clean", day, "repaired"))
        if day < FIRST_NIGHT + timedelta(days=NIGHTS):
            for room_type in ROOM_TYPES:
                if rng.random() < 0.5 and free[room_type]:
                    nights = _nights(day, rng.choice((1, 2)))
                    if month.fits(room_type, nights):
                        month.take(room_type, nights)
                        index = min(free[room_type])
                        free[room_type].discard(index)
                        out[room_type, index] = nights[-1] + timedelta(days=1)
                        for offset, night in enumerate(nights):
                            month.emit(_at(day, 8.5) + timedelta(seconds=offset), pms,
                                       EventKind.ROOM, "maintenance_updated",
                                       _room_data(room_type, index, "out_of_order", night,
                                                  "air conditioning repair"))
        for stay in leaving.pop(day, []):
            assert stay.room is not None
            at = _at(day, rng.uniform(7, 11.5))
            month.emit(at, pms, EventKind.CHECKIN_CHECKOUT, "checked_out", _movement(
                stay, actual_checkout_time=at.isoformat(), payment_status="completed",
                additional_charges=f"{rng.randrange(0, 9000)}.000" if rng.random() < 0.4
                else None))
            room_type, number = stay.room.split("-")
            free[room_type].add(int(number))
            if rng.random() < 0.35:
                month.emit(at + timedelta(hours=rng.uniform(1, 3)), pms, EventKind.ROOM,
                           "status_changed",
                           _room_data(room_type, int(number), "inspected", day))
            members[stay.customer] += 1
        for stay in sorted(arriving.pop(day, []), key=lambda s: (s.walk_in, s.number)):
            if stay.no_show:
                month.emit(_at(day + timedelta(days=1), rng.uniform(0.5, 2)), pms,
                           EventKind.CHECKIN_CHECKOUT, "no_show", _movement(stay))
                continue
            stay.room = _room_id(stay.room_type, min(free[stay.room_type]))
            free[stay.room_type].discard(int(stay.room.split("-")[1]))
            at = (stay.booked_at - timedelta(seconds=1) if stay.walk_in else max(
                _at(day, rng.uniform(14, 23)), stay.booked_at + timedelta(minutes=10)))
            month.emit(at, pms, EventKind.CHECKIN_CHECKOUT, "checked_in", _movement(
                stay, actual_checkin_time=at.isoformat()))
            leaving.setdefault(stay.leave, []).append(stay)
    return members


def _customers(month: Month, customers: int, first_booking: dict[str, datetime],
               stayed: Counter[str]) -> None:
    rng, start = month.rng, _at(FIRST_NIGHT - timedelta(days=60), 0)
    for number in range(customers):
        customer = f"C{number:06d}"
        first = first_booking.get(customer, _at(FIRST_NIGHT + timedelta(days=NIGHTS), 0))
        late = rng.random() < 0.03 and customer in first_booking
        at = first + timedelta(seconds=30) if late else start + (first - start) * rng.random()
        month.emit(at, System.HOTEL_MEMBER, EventKind.CUSTOMER, "created", {
            "customer_id": customer, "name": f"Guest {number}",
            "email": f"guest{number}@example.com", "phone": None,
            "rank_id": rng.choice(("blue", "silver", "gold")), "total_points": 0,
            "updated_fields": [], "updatable_by_pms": rng.random() < 0.3, "version": 0})
    for customer, stays in sorted(stayed.items()):
        if rng.random() < 0.4:
            month.emit(_at(FIRST_NIGHT + timedelta(days=NIGHTS + 1), rng.uniform(1, 20)),
                       System.HOTEL_MEMBER, EventKind.CUSTOMER, "points_changed", {
                           "customer_id": customer, "total_points": 500 * stays,
                           "updated_fields": ["total_points"], "version": 0})


def _outages(month: Month, windows: Sequence[tuple[date, float]]) -> None:
    """hotel-pms events of each 90-minute window go out at its end, in their own order."""
    for day, hour in windows:
        begin, end = _at(day, hour), _at(day, hour + 1.5)
        for planned in month.events:
            if planned.system is System.HOTEL_PMS and begin <= planned.at < end:
                planned.at = end + (planned.at - begin) / 1000


def generate(*, seed: int = 7, customers: int = 7_000) -> list[Planned]:
    """The month's events in publish order, versions numbered per entity and system."""
    month = Month(random.Random(seed))
    opening = _at(FIRST_NIGHT - timedelta(days=60), 0) - timedelta(days=1)
    for room_type, (rooms, _) in ROOM_TYPES.items():
        for index in range(rooms):
            month.emit(opening, System.HOTEL_PMS, EventKind.ROOM, "status_changed",
                       _room_data(room_type, index, "vacant_clean", FIRST_NIGHT))
    stays = _plan_stays(month, customers)
    first_booking: dict[str, datetime] = {}
    _book(month, stays, first_booking)
    stayed = _front_desk(month, stays)
    _customers(month, customers, first_booking, stayed)
    _outages(month, [(FIRST_NIGHT + timedelta(days=4), 15.0),
                     (FIRST_NIGHT + timedelta(days=13), 9.5),
                     (FIRST_NIGHT + timedelta(days=21), 18.0)])
    events = sorted(month.events, key=lambda planned: (planned.at, planned.seq))
    versions: Counter[tuple[str, str, str]] = Counter()
    for planned in events:
        data = planned.document["data"]
        if "version" in data:
            slot = (planned.kind.value, planned.key, planned.system.value)
            versions[slot] += 1
            data["version"] = versions[slot]
    return events


def publish_chunks(events: Sequence[Planned], size: int) -> Iterator[list[Planned]]:
    """Publish order in chunks sent at once: an entity appears at most once per chunk, so
    its events keep their order whichever producer sends them."""
    chunk: list[Planned] = []
    keys: set[str] = set()
    for planned in events:
        if len(chunk) >= size or planned.key in keys:
            yield chunk
            chunk, keys = [], set()
        chunk.append(planned)
        keys.add(planned.key)
    if chunk:
        yield chunk


async def publish(events: Sequence[Planned], *, settings: HubSettings,
                  registry: SchemaRegistryClient, chunk: int = 500) -> tuple[int, float]:
    """Publish with the hub's own publishers (one per system); (events, seconds)."""
    publishers = {system: HotelEventPublisher(system=system, registry=registry, settings=settings)
                  for system in {planned.system for planned in events}}
    for publisher in publishers.values():
        await publisher.start()
    started, sent = time.perf_counter(), 0
    try:
        for batch in publish_chunks(events, chunk):
            done: list[PublishedEvent] = await asyncio.gather(*(
                publishers[planned.system].publish_document(planned.document)
                for planned in batch))
            sent += len(done)
    finally:
        for publisher in publishers.values():
            await publisher.stop()
    return sent, time.perf_counter() - started


def check_offline(events: Sequence[Planned]) -> dict[str, Any]:
    """Every event through the hub's pure step, in publish order, no Kafka: refusals by
    reason (0 expected), events still waiting, events/s of the step."""
    from streams.core.documents import build_event
    from streams.core.models import record_key
    from streams.core.rules import RuleSettings
    from streams.core.step import apply_event

    states: dict[tuple[str, bytes], Any] = {}
    refusals: Counter[str] = Counter()
    first: dict[str, str] = {}
    rules = RuleSettings()
    started = time.perf_counter()
    for planned in events:
        event = build_event(planned.document, publisher=planned.system, default_hotel_id=HOTEL)
        step = apply_event(event, lambda tag, key: states.get((tag, key)), rules)
        states.update(step.changes)
        for refusal in step.refusals:
            refusals[refusal.reason_code.value] += 1
            first.setdefault(refusal.reason_code.value,
                             f"{record_key(event).decode()}: {refusal.reason}")
    seconds = time.perf_counter() - started
    waiting = sum(len(state.events) for (tag, _), state in states.items() if tag == "waiting")
    return {"events": len(events), "refusals": dict(refusals), "first_refusals": first,
            "still_waiting": waiting, "step_events_per_s": round(len(events) / seconds)}


def describe(events: Sequence[Planned]) -> dict[str, int]:
    counts = Counter(f"{planned.kind.value}.{planned.document['action']}" for planned in events)
    return dict(sorted(counts.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The month's events, checked offline.")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args(argv)
    events = generate(seed=options.seed)
    for name, count in describe(events).items():
        print(f"{name:36s} {count:7,d}")
    print(f"{'total':36s} {len(events):7,d}")
    report = check_offline(events)
    print(report)
    return 1 if report["refusals"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
