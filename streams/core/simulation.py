"""A simulated hotel day: the events the three systems would publish, in order.

Deterministic for a seed, so the demo, tests and benchmarks replay the same day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from streams.core.kinds import System

ROOM_TYPES = {"SGL": Decimal("9800"), "DBL": Decimal("14500"), "TWN": Decimal("15800"),
              "STE": Decimal("42000")}
RANKS = ("regular", "silver", "gold", "platinum")
ORIGINS = ("front_desk", "phone", "direct_web", "member_app", "ota", "travel_agent")


@dataclass(frozen=True)
class SimulatedEvent:
    system: System
    document: dict[str, Any]


def hotel_day(
    *,
    day: date,
    hotel_id: str,
    timezone: str,
    currency: str = "JPY",
    rooms: int = 40,
    customers: int = 60,
    seed: int = 7,
) -> list[SimulatedEvent]:
    """Morning housekeeping, repairs, bookings, cancellations, arrivals and no-shows. The
    room status after each arrival and the day's report are the hub's to derive, so the
    simulated systems do not send them."""
    rng = random.Random(seed)
    zone = ZoneInfo(timezone)

    def at(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), zone)

    events: list[SimulatedEvent] = []

    def emit(system: System, kind: str, action: str, moment: datetime, data: dict[str, Any],
             correlation_id: str | None = None) -> None:
        events.append(SimulatedEvent(system, {
            "type": kind, "action": action, "hotel_id": hotel_id, "occurred_at": moment,
            "correlation_id": correlation_id, "data": data,
        }))

    room_list = [
        (f"{hotel_id}-R{floor}{index:02d}", f"{floor}{index:02d}", rng.choice(list(ROOM_TYPES)))
        for floor in range(2, 2 + (rooms + 9) // 10)
        for index in range(1, 11)
    ][:rooms]
    for minute, (room_id, number, room_type) in enumerate(room_list):
        emit(System.HOTEL_PMS, "room", "status_changed", at(6, minute % 60), {
            "room_id": room_id, "room_number": number, "room_type": room_type,
            "status": "inspected", "availability_date": day.isoformat(),
            "base_price": str(ROOM_TYPES[room_type]), "currency": currency, "version": 1,
        })

    customer_ids = [f"C{seed:02d}{index:05d}" for index in range(customers)]
    for index, customer_id in enumerate(customer_ids):
        emit(System.HOTEL_MEMBER, "customer", "created", at(7, index % 60), {
            "customer_id": customer_id, "name": f"Guest {index}",
            "email": f"guest{index}@example.com", "phone": f"+81-3-5555-{index:04d}",
            "rank_id": rng.choice(RANKS), "total_points": rng.randrange(0, 20000, 10),
            "updated_fields": ["name", "email", "phone", "rank_id", "total_points"],
            "updatable_by_pms": True, "version": 1,
        })

    # Two rooms go out of order for the day; the rest can be sold.
    for room_id, number, room_type in room_list[-2:]:
        emit(System.HOTEL_PMS, "room", "maintenance_updated", at(11), {
            "room_id": room_id, "room_number": number, "room_type": room_type,
            "status": "out_of_order", "availability_date": day.isoformat(),
            "base_price": str(ROOM_TYPES[room_type]), "currency": currency,
            "maintenance_notes": "air conditioning repair", "version": 2,
        })

    free_rooms = list(room_list[:-2])
    rng.shuffle(free_rooms)
    for index in range(min(len(free_rooms), customers) * 3 // 4):
        reservation_id = f"{hotel_id}-B{day:%y%m%d}{index:04d}"
        customer_id = customer_ids[index]
        room_id, number, room_type = free_rooms[index]
        nights = rng.choice((1, 1, 2, 3))
        amount = ROOM_TYPES[room_type] * nights
        booking = {
            "reservation_id": reservation_id, "customer_id": customer_id,
            "room_type": room_type, "room_number": number,
            "checkin_date": day.isoformat(),
            "checkout_date": (day + timedelta(days=nights)).isoformat(),
            "total_amount": str(amount), "currency": currency,
            "origin": rng.choice(ORIGINS),
        }
        booked_by = rng.choice((System.HOTEL_PMS, System.HOTEL_MEMBER, System.HOTEL_SAAS))
        emit(booked_by, "reservation", "created", at(8, index % 60),
             {**booking, "status": "tentative", "version": 1}, reservation_id)
        if index % 9 == 8:
            emit(booked_by, "reservation", "cancelled", at(10, index % 60),
                 {**booking, "status": "cancelled", "version": 2}, reservation_id)
            continue
        emit(booked_by, "reservation", "confirmed", at(9, index % 60),
             {**booking, "status": "confirmed", "version": 2}, reservation_id)
        if index % 11 == 10:
            emit(System.HOTEL_PMS, "checkin_checkout", "no_show", at(22, index % 60), {
                "reservation_id": reservation_id, "customer_id": customer_id,
                "room_number": number, "payment_status": "pending",
            }, reservation_id)
            continue
        checkin = at(15 + index % 6, index % 60)
        emit(System.HOTEL_PMS, "checkin_checkout", "checked_in", checkin, {
            "reservation_id": reservation_id, "customer_id": customer_id, "room_number": number,
            "room_id": room_id, "actual_checkin_time": checkin, "payment_status": "pending",
        }, reservation_id)

    return events
