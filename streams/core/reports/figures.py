"""A report's figures from the days' shares, as revenue managers define them (STR / USALI).

Supply counts every room in the house, out of order or not (USALI); the operational
figures leave the out-of-order rooms out, and say so in their names. Every ratio is
computed from the summed figures of its scope (`streams.core.reports.money`), so a
report's types add up to the hotel and its days to the week and the month.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streams.core.reports.money import (
    NIGHTS_PLACES,
    RATE_PLACES,
    per_unit,
    ratio,
    to_currency,
)
from streams.core.reports.periods import ReportPeriod
from streams.core.reports.shares import DayFigures, DayTotals

DayOfTypes = Mapping[str, DayTotals]
"""One business day: room type -> its totals."""
Supply = Mapping[str, Mapping[str, date]]
"""Room type -> room id -> the first day the room is in the house."""


class ReportError(ValueError):
    """A report that cannot be built from what the hub holds (e.g. mixed currencies)."""


@dataclass
class Totals:
    """Additive figures of one scope (a room type or the hotel, over some days)."""

    rooms_available: int = 0
    summed: DayFigures = field(default_factory=DayFigures)
    guests: set[str] = field(default_factory=set)

    def take(self, day: DayTotals) -> None:
        self.summed = self.summed.plus(day)
        self.guests.update(day.customers)

    def figures(self, currency: str) -> dict[str, Any]:
        day = self.summed
        operational = self.rooms_available - day.out_of_order
        return {
            "rooms_available": self.rooms_available,
            "rooms_available_operational": operational,
            "out_of_order_room_nights": day.out_of_order,
            "rooms_sold": day.sold,
            "room_revenue": to_currency(day.room_revenue, currency),
            "other_revenue": to_currency(day.other_revenue, currency),
            "total_revenue": to_currency(day.room_revenue + day.other_revenue, currency),
            "occupancy_rate": ratio(day.sold, self.rooms_available, RATE_PLACES),
            "occupancy_rate_operational": ratio(day.sold, operational, RATE_PLACES),
            "adr": per_unit(day.room_revenue, day.sold, currency),
            "revpar": per_unit(day.room_revenue, self.rooms_available, currency),
            "guests": len(self.guests),
            "arrivals": day.arrivals,
            "arrival_nights": day.arrival_nights,
            "average_stay_duration": ratio(day.arrival_nights, day.arrivals, NIGHTS_PLACES),
            "rooms_on_the_books": day.sold + day.booked,
            "room_revenue_on_the_books": to_currency(day.room_revenue + day.booked_revenue,
                                                     currency),
        }


def supply_on(supply: Supply, room_type: str, day: date) -> int:
    return sum(1 for since in supply.get(room_type, {}).values() if since <= day)


def report_currency(days: Iterable[DayOfTypes], default: str) -> str:
    found = {currency for day in days for totals in day.values()
             for currency in totals.currencies}
    if len(found) > 1:
        raise ReportError(f"amounts in {', '.join(sorted(found))}: a report adds one currency")
    return found.pop() if found else default


def report_figures(hotel_id: str, period: ReportPeriod, days: Mapping[date, DayOfTypes],
                   supply: Supply, *, default_currency: str) -> dict[str, Any]:
    """The figures of `period`: the hotel's, each room type's, and (weekly and monthly) each
    day's, as the README's definitions state them; `days` holds each day of the period."""
    currency = report_currency(days.values(), default_currency)
    types = sorted({*supply, *(room_type for day in days.values() for room_type in day)})
    hotel, by_type = Totals(), {room_type: Totals() for room_type in types}
    daily = []
    for day in period.days:
        shares = days.get(day, {})
        that_day = Totals()
        for room_type in types:
            rooms = supply_on(supply, room_type, day)
            for totals in (hotel, by_type[room_type], that_day):
                totals.rooms_available += rooms
            day_totals = shares.get(room_type)
            if day_totals is not None:
                for totals in (hotel, by_type[room_type], that_day):
                    totals.take(day_totals)
        daily.append({"date": day, **that_day.figures(currency)})
    figures: dict[str, Any] = {
        "hotel_id": hotel_id, "period": str(period.period), "period_start": period.start,
        "period_end": period.end, "currency": currency, **hotel.figures(currency),
        "room_types": {room_type: totals.figures(currency)
                       for room_type, totals in by_type.items()},
    }
    if len(daily) > 1:
        figures["days"] = daily
    return figures


def digest(figures: Mapping[str, Any]) -> str:
    """Stable fingerprint of a report's figures: a new version is sent only when it changes."""
    text = json.dumps(figures, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
