"""A hotel's day for the live board's tests: four floors of rooms in every status, guests in
house since yesterday, today's arrivals and departures, published as the systems would,
with the figures the board must show.

Times are the hotel's own (its time zone) and never in the future: yesterday's events at
fixed hours, today's between midnight and now, so a room's status always follows the
order the events happened in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from streams.core.identities import IssuedSecret
from streams.core.kinds import System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from tests.support.gateway import RunningGateway, gateway_settings, running_gateway
from tests.support.hotel import new_hotel_id, publishers_of
from tests.support.http import get, query_identity
from tests.support.outside import health, until
from tests.support.workers import WorkerProcess, isolated, worker_group

FLOORS, PER_FLOOR = 4, 8
TYPES = {1: "DBL", 2: "DBL", 3: "DBL", 4: "TWN", 5: "TWN", 6: "TWN", 7: "SGL", 8: "STE"}
MORNING = ("vacant_clean", "inspected", "vacant_dirty", "vacant_clean")
OUT_OF_ORDER = {"207": "bathroom leak", "402": "air conditioning repair"}
OUT_OF_SERVICE = {"305": "deep clean"}
STAYOVERS = ("101", "102", "103")
DEPARTING = {"201": True, "202": True, "203": False}
"""Rooms of guests leaving today: checked out already, or still in house."""
ARRIVING = {  # room: the arrival's status by now
    "301": "checked_in", "302": "checked_in", "104": "checked_in", "204": "checked_in",
    "303": "confirmed", "401": "guaranteed", "403": "tentative", "404": "cancelled",
}

REFUSED_CHECKOUT = "403"
"""A check-out of this room's tentative arrival, which the hub refuses."""

Published = Callable[[list[str]], Awaitable[None]]


@dataclass
class BoardHotel:
    hotel_id: str
    today: date
    zone: ZoneInfo
    now: datetime
    phases: list[list[tuple[System, dict[str, Any]]]] = field(default_factory=list)

    @property
    def room_numbers(self) -> list[str]:
        return [f"{floor}{index:02d}" for floor in range(1, FLOORS + 1)
                for index in range(1, PER_FLOOR + 1)]

    def room_id(self, number: str) -> str:
        return f"RM-{number}"

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), self.zone)

    def today_at(self, minutes_ago: int) -> datetime:
        """`minutes_ago` before now, but never before today's midnight."""
        midnight = self.at(self.today, 0, 1)
        return max(midnight + timedelta(seconds=minutes_ago), self.now - timedelta(
            minutes=minutes_ago))

    def expected(self) -> dict[str, Any]:
        """What the board's figures must say once every phase is applied."""
        rooms = len(self.room_numbers)
        out = len(OUT_OF_ORDER) + len(OUT_OF_SERVICE)
        arrived = sum(status == "checked_in" for status in ARRIVING.values())
        occupied = len(STAYOVERS) + sum(not left for left in DEPARTING.values()) + arrived
        return {
            "rooms": rooms, "sellable": rooms - out, "occupied": occupied,
            "occupancy_pct": round(100 * occupied / (rooms - out), 1),
            "out_of_order": len(OUT_OF_ORDER), "out_of_service": len(OUT_OF_SERVICE),
            "arrivals_expected": sum(status != "cancelled" for status in ARRIVING.values()),
            "arrived": arrived, "no_shows": 0,
            "departures_expected": len(DEPARTING), "departed": sum(DEPARTING.values()),
            "refusals": 1,
        }


def _event(hotel: BoardHotel, kind: str, action: str, moment: datetime,
           data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "action": action, "hotel_id": hotel.hotel_id,
            "occurred_at": moment.isoformat(), "data": data}


def _room(hotel: BoardHotel, number: str, status: str, action: str, version: int,
          moment: datetime, notes: str | None = None) -> tuple[System, dict[str, Any]]:
    room_type = TYPES[int(number[-2:])]
    return System.HOTEL_PMS, _event(hotel, "room", action, moment, {
        "room_id": hotel.room_id(number), "room_number": number, "room_type": room_type,
        "status": status, "availability_date": hotel.today.isoformat(),
        "base_price": "14500", "currency": "JPY", "maintenance_notes": notes,
        "version": version})


def _booking(hotel: BoardHotel, number: str, checkin: date, checkout: date, status: str,
             version: int, moment: datetime, action: str = "created"
             ) -> tuple[System, dict[str, Any]]:
    nights = (checkout - checkin).days
    return System.HOTEL_SAAS, _event(hotel, "reservation", action, moment, {
        "reservation_id": f"B-{checkin:%m%d}-{number}", "customer_id": f"G-{number}",
        "room_type": TYPES[int(number[-2:])], "room_number": number,
        "checkin_date": checkin.isoformat(), "checkout_date": checkout.isoformat(),
        "total_amount": str(14500 * nights), "currency": "JPY", "status": status,
        "origin": "direct_web", "version": version})


def _movement(hotel: BoardHotel, number: str, checkin: date, action: str, moment: datetime,
              arrived: datetime) -> tuple[System, dict[str, Any]]:
    data: dict[str, Any] = {
        "reservation_id": f"B-{checkin:%m%d}-{number}", "customer_id": f"G-{number}",
        "room_number": number, "room_id": hotel.room_id(number),
        "actual_checkin_time": arrived.isoformat(), "payment_status": "pending"}
    if action == "checked_out":
        data |= {"actual_checkout_time": moment.isoformat(), "payment_status": "completed",
                 "additional_charges": "1800", "currency": "JPY"}
    return System.HOTEL_PMS, _event(hotel, "checkin_checkout", action, moment, data)


def board_hotel(hotel_id: str, timezone: str, now: datetime | None = None) -> BoardHotel:
    """The day in three phases: rooms, then bookings, then guests moving (each needs the
    one before it applied)."""
    zone = ZoneInfo(timezone)
    moment = (now or datetime.now(UTC)).astimezone(zone)
    hotel = BoardHotel(hotel_id, moment.date(), zone, moment)
    today, yesterday = hotel.today, hotel.today - timedelta(days=1)
    rooms = [_room(hotel, number, MORNING[index % len(MORNING)], "status_changed", 1,
                   hotel.at(yesterday, 8, index % 60))
             for index, number in enumerate(hotel.room_numbers)]
    for notes, status in ((OUT_OF_ORDER, "out_of_order"), (OUT_OF_SERVICE, "out_of_service")):
        rooms += [_room(hotel, number, status, "maintenance_updated", 2,
                        hotel.at(yesterday, 9), why) for number, why in notes.items()]
    bookings = [_booking(hotel, number, yesterday, today + timedelta(days=1), "confirmed", 1,
                         hotel.at(yesterday - timedelta(days=3), 10)) for number in STAYOVERS]
    bookings += [_booking(hotel, number, yesterday, today, "confirmed", 1,
                          hotel.at(yesterday - timedelta(days=5), 11)) for number in DEPARTING]
    for index, (number, status) in enumerate(ARRIVING.items()):
        booked = "confirmed" if status in ("checked_in", "cancelled") else status
        bookings.append(_booking(hotel, number, today, today + timedelta(days=1 + index % 2),
                                 booked, 1, hotel.at(yesterday, 12, index)))
        if status == "cancelled":
            bookings.append(_booking(hotel, number, today, today + timedelta(days=1),
                                     "cancelled", 2, hotel.at(yesterday, 13), "cancelled"))
    movements = []
    for index, number in enumerate((*STAYOVERS, *DEPARTING)):
        arrived = hotel.at(yesterday, 15, index * 7)
        movements.append(_movement(hotel, number, yesterday, "checked_in", arrived, arrived))
    for index, (number, left) in enumerate(DEPARTING.items()):
        if left:
            movements.append(_movement(hotel, number, yesterday, "checked_out",
                                       hotel.today_at(150 - 20 * index),
                                       hotel.at(yesterday, 15, 7 * (3 + index))))
    for index, (number, status) in enumerate(ARRIVING.items()):
        if status == "checked_in":
            arrived = hotel.today_at(90 - 15 * index)
            movements.append(_movement(hotel, number, today, "checked_in", arrived, arrived))
    # hotel-pms checks out a guest who never arrived: refused (illegal transition).
    movements.append(_movement(hotel, REFUSED_CHECKOUT, today, "checked_out",
                               hotel.today_at(5), hotel.today_at(6)))
    hotel.phases = [rooms, bookings, movements]
    return hotel


async def publish_board_hotel(publishers: dict[System, HotelEventPublisher], hotel: BoardHotel,
                              applied: Callable[[int], Awaitable[None]]) -> None:
    """Publish each phase, awaiting `applied(phase)` before the next."""
    for number, phase in enumerate(hotel.phases):
        for system, document in phase:
            await publishers[system].publish_document(document)
        await applied(number)


@dataclass
class Env:
    settings: HubSettings
    worker: WorkerProcess
    gateway: RunningGateway
    hotel: BoardHotel
    stranger: IssuedSecret
    """A system that sees another hotel only."""
    stranger_hotel: str


async def _applied(session: aiohttp.ClientSession, worker: WorkerProcess, hotel: BoardHotel,
                   phase: int) -> None:
    """Waits until the worker serves what phase `phase` of the hotel published."""
    base, day = f"{worker.url}/reservations/{hotel.hotel_id}", hotel.today
    asks: dict[int, tuple[str, Callable[[Any], bool]]] = {
        0: (f"{worker.url}/rooms/{hotel.hotel_id}?status=out_of_service",
            lambda body: body["count"] == 1),
        1: (f"{base}?arriving={day}", lambda body: body["count"] == 8 and any(
            stay["status"] == "cancelled" for stay in body["reservations"])),
        2: (f"{base}?departing={day}", lambda body: sum(
            stay["status"] == "checked_out" for stay in body["reservations"]) == 2),
    }
    url, done = asks[phase]
    await until([worker], lambda: get(session, url),
                lambda answer: answer.status == 200 and done(answer.body),
                f"phase {phase} served", timeout_s=60)
    if phase == 2:  # the arrivals' check-ins too
        await until([worker], lambda: get(session, f"{base}?arriving={day}"),
                    lambda answer: sum(stay["status"] == "checked_in"
                                       for stay in answer.body["reservations"]) == 4,
                    "arrivals checked in", timeout_s=60)


@asynccontextmanager
async def running_board(hub_settings: HubSettings, log_dir: Path) -> AsyncIterator[Env]:
    """A worker of a test's own fed a `board_hotel` day, and a gateway reading it; with a
    system identity that sees another hotel only."""
    own = isolated(hub_settings, "board")
    [worker] = worker_group(own, "board", log_dir, count=1,
                            extra_env={"HOTELHUB_REPORT_TICK_S": "0"})
    stranger_hotel = new_hotel_id()
    hotel = board_hotel(new_hotel_id(), own.timezone)
    with query_identity(own, stranger_hotel) as stranger:
        worker.start()
        try:
            async with aiohttp.ClientSession() as session:
                await until([worker], lambda: health(session, worker),
                            lambda answer: answer is not None and answer.status == 200,
                            "healthy worker", timeout_s=120)
                async with publishers_of(own) as publishers:
                    await publish_board_hotel(publishers, hotel, lambda phase: _applied(
                        session, worker, hotel, phase))
            async with running_gateway(gateway_settings(own, worker_url=worker.url)) as gateway:
                yield Env(own, worker, gateway, hotel, stranger, stranger_hotel)
        finally:
            worker.stop()
