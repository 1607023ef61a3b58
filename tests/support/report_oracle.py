"""An independent calculation of the hub's reports, written from the report definitions
(issue 9) alone, to compare the hub's reports with.

Deliberately plain: it reads every published event, then loops over dates, room types,
rooms and stays, recomputing each figure from its definition. It shares no code with the
hub's report code, so a mistake there is not repeated here. Speed does not matter.

Resolved where the definitions leave room:
- A tie of versions (two events of one room or reservation with the same `version`): the
  one published later wins.
- A stay without a `customer_id` counts no guest.
- A report lists under `room_types` every type of the hotel's rooms and every type of a
  sold stay it has seen, with zeros where a type has nothing in the period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from streams.core.kinds import System
from streams.core.simulation import SimulatedEvent

MINOR_UNITS = {"JPY": 0, "GBP": 2, "USD": 2, "EUR": 2}
OUT_OF_ORDER = ("out_of_order", "out_of_service")
ADDITIVE = ("rooms_available", "rooms_available_operational", "out_of_order_room_nights",
            "rooms_sold", "room_revenue", "other_revenue", "total_revenue", "arrivals",
            "arrival_nights")
"""Figures that add up over types and over days (definitions, item 9)."""


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency`: 1 yen, 0.01 pound."""
    if currency not in MINOR_UNITS:
        raise ValueError(f"no minor unit known for currency {currency!r}")
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def _round(amount: Decimal, unit: Decimal) -> Decimal:
    return amount.quantize(unit, rounding=ROUND_HALF_UP)


def night_share(total: Decimal, night_index: int, nights: int, currency: str) -> Decimal:
    """Night k's share of a stay's total: R(total*(k+1)/n) - R(total*k/n) (item 4)."""
    unit = minor_unit(currency)
    return (_round(total * (night_index + 1) / nights, unit)
            - _round(total * night_index / nights, unit))


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _money(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


@dataclass
class _Stay:
    """One reservation: its latest booking, and whether and when the guest came and went."""

    version: int = -1
    room_type: str = ""
    checkin: date = date.min
    checkout: date = date.min
    total: Decimal = Decimal(0)
    customer_id: str | None = None
    checked_in: bool = False
    departure: date | None = None
    charges: Decimal = Decimal(0)

    @property
    def booked_nights(self) -> int:
        return (self.checkout - self.checkin).days

    def stayed_nights(self) -> list[date]:
        end = self.checkout
        if self.departure is not None:
            end = min(self.checkout, max(self.departure, self.checkin))
        return [self.checkin + timedelta(days=n) for n in range((end - self.checkin).days)]


@dataclass
class _Room:
    room_type: str
    in_house_from: date
    status_on: dict[date, tuple[int, str]] = field(default_factory=dict)
    """availability_date -> (version, status) of the latest hotel-pms event for that date."""


def _read(events: list[SimulatedEvent], hotel_id: str, timezone: str
          ) -> tuple[dict[str, _Room], dict[str, _Stay]]:
    """The hotel's rooms and stays from its events, in publish order."""
    zone = ZoneInfo(timezone)
    rooms: dict[str, _Room] = {}
    stays: dict[str, _Stay] = {}
    for event in events:
        document = event.document
        if document["hotel_id"] != hotel_id:
            continue
        kind, action, data = document["type"], document["action"], document["data"]
        if kind == "room":
            room_id = data["room_id"]
            if room_id not in rooms:
                rooms[room_id] = _Room(data["room_type"], _date(data["availability_date"]))
            if event.system == System.HOTEL_PMS:
                night = _date(data["availability_date"])
                known = rooms[room_id].status_on.get(night)
                if known is None or data["version"] >= known[0]:
                    rooms[room_id].status_on[night] = (data["version"], data["status"])
        elif kind == "reservation":
            stay = stays.setdefault(data["reservation_id"], _Stay())
            if data["version"] >= stay.version:
                stay.version = data["version"]
                stay.room_type = data["room_type"]
                stay.checkin = _date(data["checkin_date"])
                stay.checkout = _date(data["checkout_date"])
                stay.total = _money(data["total_amount"])
                stay.customer_id = data.get("customer_id")
        elif kind == "checkin_checkout":
            stay = stays.setdefault(data["reservation_id"], _Stay())
            if action == "checked_in":
                stay.checked_in = True
            elif action == "checked_out":
                stay.departure = _moment(data["actual_checkout_time"]).astimezone(zone).date()
                stay.charges = _money(data.get("additional_charges"))
    return rooms, stays


def period_dates(period: str, period_start: date) -> list[date]:
    """The dates of a daily, weekly (Sunday..Saturday) or monthly report."""
    if period == "daily":
        return [period_start]
    if period == "weekly":
        if period_start.weekday() != 6:
            raise ValueError(f"a weekly period starts on a Sunday; {period_start.isoformat()} "
                             f"is a {period_start:%A}")
        return [period_start + timedelta(days=n) for n in range(7)]
    if period == "monthly":
        if period_start.day != 1:
            raise ValueError(f"a monthly period starts on a 1st, not on "
                             f"{period_start.isoformat()}")
        dates = []
        day = period_start
        while day.month == period_start.month:
            dates.append(day)
            day += timedelta(days=1)
        return dates
    raise ValueError(f"period is daily, weekly or monthly, not {period!r}")


def periods_of_month(first: date) -> list[tuple[str, date]]:
    """Every daily report of the month, every weekly one overlapping it, and the monthly one."""
    month = period_dates("monthly", first)
    sunday = first - timedelta(days=(first.weekday() + 1) % 7)
    weeks = []
    while sunday <= month[-1]:
        weeks.append(("weekly", sunday))
        sunday += timedelta(days=7)
    return [("daily", day) for day in month] + weeks + [("monthly", first)]


def _figures(rooms: list[_Room], stays: list[_Stay], dates: list[date], currency: str
             ) -> dict[str, Any]:
    """The figures and KPIs of one scope: these rooms and these sold stays over these dates."""
    unit = minor_unit(currency)
    available = out_of_order = sold = arrivals = arrival_nights = 0
    room_revenue = other_revenue = Decimal(0)
    guests: set[str] = set()
    for day in dates:
        for room in rooms:
            if room.in_house_from <= day:
                available += 1
            status = room.status_on.get(day)
            if status is not None and status[1] in OUT_OF_ORDER:
                out_of_order += 1
        for stay in stays:
            if day in stay.stayed_nights():
                sold += 1
                room_revenue += night_share(stay.total, (day - stay.checkin).days,
                                            stay.booked_nights, currency)
                if stay.customer_id is not None:
                    guests.add(stay.customer_id)
            if stay.departure == day:
                other_revenue += stay.charges
            if stay.checkin == day:
                arrivals += 1
                arrival_nights += stay.booked_nights
    operational = available - out_of_order

    def ratio(part: int | Decimal, whole: int, places: Decimal) -> Decimal:
        return Decimal(0) if whole == 0 else _round(Decimal(part) / whole, places)

    return {
        "rooms_available": available, "rooms_available_operational": operational,
        "out_of_order_room_nights": out_of_order, "rooms_sold": sold,
        "room_revenue": room_revenue, "other_revenue": other_revenue,
        "total_revenue": room_revenue + other_revenue,
        "occupancy_rate": ratio(sold, available, Decimal("0.0001")),
        "occupancy_rate_operational": ratio(sold, operational, Decimal("0.0001")),
        "adr": ratio(room_revenue, sold, unit),
        "revpar": ratio(room_revenue, available, unit),
        "guests": len(guests), "arrivals": arrivals, "arrival_nights": arrival_nights,
        "average_stay_duration": ratio(arrival_nights, arrivals, Decimal("0.01")),
    }


def expected_report(events: list[SimulatedEvent], *, hotel_id: str, timezone: str,
                    currency: str, period: str, period_start: date) -> dict[str, Any]:
    """The report the hub should publish for `hotel_id` over the period, from its events."""
    dates = period_dates(period, period_start)
    rooms, stays = _read(events, hotel_id, timezone)
    sold = [stay for stay in stays.values() if stay.checked_in and stay.version >= 0]
    types = sorted({room.room_type for room in rooms.values()}
                   | {stay.room_type for stay in sold})
    report: dict[str, Any] = {
        "hotel_id": hotel_id, "period": period, "period_start": dates[0],
        "period_end": dates[-1], "currency": currency,
        **_figures(list(rooms.values()), sold, dates, currency),
        "room_types": {
            room_type: _figures([room for room in rooms.values()
                                 if room.room_type == room_type],
                                [stay for stay in sold if stay.room_type == room_type],
                                dates, currency)
            for room_type in types
        },
    }
    return report
