"""The report oracle (`tests.support.report_oracle`) and the month generator
(`tests.support.month`) checked on their own, no broker: hand-computed stays first, then
properties of whole generated months that any correct report must have."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core.kinds import System
from streams.core.simulation import SimulatedEvent
from tests.support.month import hotel_month
from tests.support.report_oracle import (
    ADDITIVE,
    expected_report,
    night_share,
    period_dates,
    periods_of_month,
)

TOKYO = ZoneInfo("Asia/Tokyo")
FIRST = date(2026, 10, 1)


class Book:
    """A tiny hotel's events, written by hand."""

    def __init__(self, currency: str = "JPY", timezone: str = "Asia/Tokyo") -> None:
        self.currency, self.zone = currency, ZoneInfo(timezone)
        self.events: list[SimulatedEvent] = []

    def _emit(self, system: System, kind: str, action: str, moment: datetime,
              data: dict[str, Any], correlation_id: str | None = None) -> None:
        self.events.append(SimulatedEvent(system, {
            "type": kind, "action": action, "hotel_id": "H1", "occurred_at": moment,
            "correlation_id": correlation_id, "data": data}))

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), self.zone)

    def room(self, room_id: str, room_type: str = "DBL", status: str = "inspected",
             on: date = FIRST, version: int = 1) -> Book:
        self._emit(System.HOTEL_PMS, "room", "status_changed", self.at(on, 6), {
            "room_id": room_id, "room_number": room_id, "room_type": room_type,
            "status": status, "availability_date": on.isoformat(), "version": version})
        return self

    def book(self, reservation_id: str, total: str, checkin: date, nights: int, *,
             room_type: str = "DBL", customer: str = "C1", status: str = "confirmed",
             version: int = 1) -> Book:
        self._emit(System.HOTEL_SAAS, "reservation", "created",
                   self.at(checkin - timedelta(days=10), 9), {
                       "reservation_id": reservation_id, "customer_id": customer,
                       "room_type": room_type, "checkin_date": checkin.isoformat(),
                       "checkout_date": (checkin + timedelta(days=nights)).isoformat(),
                       "total_amount": total, "currency": self.currency,
                       "status": status, "origin": "ota", "version": version},
                   reservation_id)
        return self

    def move(self, action: str, reservation_id: str, moment: datetime,
             charges: str | None = None) -> Book:
        data: dict[str, Any] = {"reservation_id": reservation_id, "room_number": "201",
                                "room_id": "R201", "payment_status": "completed"}
        if action == "checked_in":
            data["actual_checkin_time"] = moment
        if action == "checked_out":
            data |= {"actual_checkout_time": moment, "additional_charges": charges}
        self._emit(System.HOTEL_PMS, "checkin_checkout", action, moment, data, reservation_id)
        return self

    def report(self, period: str = "daily", start: date = FIRST) -> dict[str, Any]:
        timezone = str(self.zone)
        return expected_report(self.events, hotel_id="H1", timezone=timezone,
                               currency=self.currency, period=period, period_start=start)


def day(n: int) -> date:
    return FIRST + timedelta(days=n - 1)


def daily(book: Book, key: str, days: range) -> list[Any]:
    return [book.report("daily", day(n))[key] for n in days]


# --- hand-computed cases ------------------------------------------------------------------


def test_a_yen_stay_spreads_whole_yen_with_the_remainder_in_the_middle() -> None:
    book = Book().room("R201").book("B1", "10000", day(1), 3)
    book.move("checked_in", "B1", book.at(day(1), 15))
    assert daily(book, "room_revenue", range(1, 5)) == [3333, 3334, 3333, 0]
    assert daily(book, "rooms_sold", range(1, 5)) == [1, 1, 1, 0]
    assert book.report("monthly")["room_revenue"] == 10000


def test_a_pound_stay_spreads_pence() -> None:
    book = Book("GBP", "Europe/London").room("R201").book("B1", "100.00", day(1), 3)
    book.move("checked_in", "B1", book.at(day(1), 15))
    assert daily(book, "room_revenue", range(1, 4)) == [
        Decimal("33.33"), Decimal("33.34"), Decimal("33.33")]
    report = book.report()
    assert report["adr"] == Decimal("33.33") and report["revpar"] == Decimal("33.33")


def test_an_early_departure_recognises_only_the_nights_stayed() -> None:
    book = Book().room("R201").book("B1", "40000", day(1), 4)
    book.move("checked_in", "B1", book.at(day(1), 15))
    book.move("checked_out", "B1", book.at(day(3), 9), charges="1200")
    assert daily(book, "rooms_sold", range(1, 5)) == [1, 1, 0, 0]
    monthly = book.report("monthly")
    assert monthly["room_revenue"] == 20000 and monthly["other_revenue"] == 1200
    assert monthly["arrival_nights"] == 4 and monthly["average_stay_duration"] == 4


def test_a_departure_on_the_arrival_day_sells_no_night() -> None:
    book = Book().room("R201").book("B1", "40000", day(1), 4)
    book.move("checked_in", "B1", book.at(day(1), 15))
    book.move("checked_out", "B1", book.at(day(1), 20))
    monthly = book.report("monthly")
    assert monthly["rooms_sold"] == 0 and monthly["room_revenue"] == 0
    assert monthly["arrivals"] == 1 and monthly["guests"] == 0


def test_a_no_show_and_a_cancellation_sell_nothing() -> None:
    book = Book().room("R201").room("R202")
    book.book("B1", "10000", day(1), 1).move("no_show", "B1", book.at(day(1), 23, 40))
    book.book("B2", "10000", day(1), 1, customer="C2")
    book.book("B2", "10000", day(1), 1, customer="C2", status="cancelled", version=2)
    report = book.report()
    assert (report["rooms_sold"], report["room_revenue"], report["guests"],
            report["arrivals"]) == (0, 0, 0, 0)
    assert report["rooms_available"] == 2 and report["occupancy_rate"] == 0


def test_a_stay_takes_its_latest_version() -> None:
    book = Book().room("R201").book("B1", "10000", day(1), 2)
    book.book("B1", "12001", day(1), 2, version=3).book("B1", "99999", day(1), 2, version=2)
    book.move("checked_in", "B1", book.at(day(1), 15))
    assert daily(book, "room_revenue", range(1, 3)) == [6001, 6000]


def test_an_out_of_order_night_stays_in_supply_but_not_in_the_operational_figure() -> None:
    book = Book().room("R201").room("R202").room("R202", status="out_of_order", on=day(2),
                                                 version=2)
    book.room("R202", status="inspected", on=day(3), version=3)
    book.book("B1", "9000", day(2), 1).move("checked_in", "B1", book.at(day(2), 15))
    second = book.report("daily", day(2))
    assert second["rooms_available"] == 2 and second["rooms_available_operational"] == 1
    assert second["out_of_order_room_nights"] == 1
    assert second["occupancy_rate"] == Decimal("0.5")
    assert second["occupancy_rate_operational"] == 1
    third = book.report("daily", day(3))
    assert third["rooms_available_operational"] == 2 and third["out_of_order_room_nights"] == 0


def test_a_room_is_in_supply_from_its_first_availability_date() -> None:
    book = Book().room("R201").room("R301", "STE", on=day(3))
    assert daily(book, "rooms_available", range(1, 5)) == [1, 1, 2, 2]
    week = book.report("weekly", date(2026, 9, 27))  # Sep 27..Oct 3: R201 3 nights, R301 1
    assert week["rooms_available"] == 4 and week["room_types"]["STE"]["rooms_available"] == 1


def test_guests_are_distinct_across_types_and_days() -> None:
    book = Book().room("R201").room("R301", "STE")
    book.book("B1", "10000", day(1), 2).book("B2", "30000", day(1), 2, room_type="STE")
    book.book("B3", "10000", day(3), 1, customer="C2")
    for reservation_id, arrival in (("B1", day(1)), ("B2", day(1)), ("B3", day(3))):
        book.move("checked_in", reservation_id, book.at(arrival, 16))
    first = book.report()
    assert first["guests"] == 1
    assert first["room_types"]["DBL"]["guests"] == first["room_types"]["STE"]["guests"] == 1
    weekly = book.report("weekly", date(2026, 9, 27))
    assert weekly["guests"] == 2 and weekly["room_types"]["DBL"]["guests"] == 2


def test_check_out_charges_fall_on_the_local_departure_day() -> None:
    book = Book("GBP", "Europe/London").room("R201").book("B1", "250.00", day(24), 2)
    book.move("checked_in", "B1", book.at(day(24), 15))
    # London is back on UTC+0 from 2026-10-25 01:00 UTC: 23:30 UTC that day is still the
    # 25th in London (it would be the 26th in Tokyo), so a night before the booked end.
    book.move("checked_out", "B1", datetime(2026, 10, 25, 23, 30, tzinfo=ZoneInfo("UTC")),
              charges="12.5")
    assert daily(book, "other_revenue", range(24, 27)) == [0, Decimal("12.50"), 0]
    assert daily(book, "rooms_sold", range(24, 27)) == [1, 0, 0]
    assert book.report("daily", day(25))["total_revenue"] == Decimal("12.50")
    assert book.report("daily", day(24))["room_revenue"] == Decimal("125.00")


def test_no_check_out_keeps_the_booked_nights() -> None:
    book = Book().room("R201").book("B1", "30000", day(31), 3)
    book.move("checked_in", "B1", book.at(day(31), 15))
    assert book.report("monthly")["room_revenue"] == 10000
    assert book.report("monthly", date(2026, 11, 1))["room_revenue"] == 20000


@pytest.mark.parametrize(("period", "start", "problem"), [
    ("weekly", date(2026, 10, 5), "Sunday"),
    ("monthly", date(2026, 10, 2), "1st"),
    ("yearly", date(2026, 1, 1), "daily, weekly or monthly"),
])
def test_a_period_that_does_not_start_where_it_should_is_refused(
        period: str, start: date, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Book().report(period, start)


def test_the_periods_of_a_month() -> None:
    periods = periods_of_month(FIRST)
    assert Counter(kind for kind, _ in periods) == {"daily": 31, "weekly": 5, "monthly": 1}
    weeks = [start for kind, start in periods if kind == "weekly"]
    assert weeks[0] == date(2026, 9, 27) and weeks[-1] == date(2026, 10, 25)
    assert all(start.weekday() == 6 for start in weeks)


@given(
    cents=st.integers(min_value=0, max_value=10**9),
    nights=st.integers(min_value=1, max_value=30),
    currency=st.sampled_from(["JPY", "GBP"]),
)
def test_shares_always_sum_to_the_total(cents: int, nights: int, currency: str) -> None:
    total = Decimal(cents) if currency == "JPY" else Decimal(cents).scaleb(-2)
    shares = [night_share(total, k, nights, currency) for k in range(nights)]
    assert sum(shares) == total
    unit = Decimal(1) if currency == "JPY" else Decimal("0.01")
    assert all(abs(share - total / nights) < unit for share in shares)


# --- a generated month ----------------------------------------------------------------------

HOTELS = {"tokyo": ("H-TYO", "Asia/Tokyo", "JPY"), "london": ("H-LON", "Europe/London", "GBP")}


@pytest.fixture(scope="module", params=sorted(HOTELS))
def month(request: pytest.FixtureRequest) -> dict[str, Any]:
    hotel_id, timezone, currency = HOTELS[request.param]
    events = hotel_month(hotel_id=hotel_id, timezone=timezone, currency=currency, first=FIRST)
    reports = {
        (period, start): expected_report(events, hotel_id=hotel_id, timezone=timezone,
                                         currency=currency, period=period, period_start=start)
        for period, start in periods_of_month(FIRST)
    }
    return {"hotel_id": hotel_id, "timezone": timezone, "currency": currency,
            "events": events, "reports": reports}


def test_the_generator_is_deterministic_per_seed(month: dict[str, Any]) -> None:
    again = hotel_month(hotel_id=month["hotel_id"], timezone=month["timezone"],
                        currency=month["currency"], first=FIRST)
    assert again == month["events"]
    other = hotel_month(hotel_id=month["hotel_id"], timezone=month["timezone"],
                        currency=month["currency"], first=FIRST, seed=12)
    assert other != month["events"]


def test_a_month_has_a_reasonable_size_and_mix(month: dict[str, Any]) -> None:
    events = month["events"]
    kinds = Counter(f"{e.document['type']}/{e.document['action']}" for e in events)
    assert 5000 <= len(events) <= 8000, f"{len(events)} events: {dict(kinds)}"
    for kind in ("reservation/updated", "reservation/cancelled", "checkin_checkout/no_show",
                 "room/maintenance_updated"):
        assert kinds[kind] > 0, f"no {kind} among {len(events)} events: {dict(kinds)}"
    occupancy = month["reports"]["monthly", FIRST]["occupancy_rate"]
    assert Decimal("0.70") <= occupancy <= Decimal("0.90"), f"{len(events)} events"


def test_types_add_up_to_the_hotel(month: dict[str, Any]) -> None:
    for key, report in month["reports"].items():
        for figure in ADDITIVE:
            assert report[figure] == sum(
                figures[figure] for figures in report["room_types"].values()), (key, figure)
        assert report["guests"] <= sum(f["guests"] for f in report["room_types"].values())


def test_days_add_up_to_weeks_and_to_the_month(month: dict[str, Any]) -> None:
    reports = month["reports"]
    for (period, start), report in reports.items():
        if period == "daily":
            continue
        days = [reports.get(("daily", d)) for d in period_dates(period, start)]
        if any(daily is None for daily in days):  # a week reaching outside the month
            continue
        for figure in ADDITIVE:
            assert report[figure] == sum(d[figure] for d in days if d), (period, start, figure)
            for room_type, figures in report["room_types"].items():
                assert figures[figure] == sum(d["room_types"][room_type][figure]
                                              for d in days if d), (period, start, room_type)


def test_occupancy_is_a_share(month: dict[str, Any]) -> None:
    for key, report in month["reports"].items():
        for scope in (report, *report["room_types"].values()):
            assert 0 <= scope["occupancy_rate"] <= scope["occupancy_rate_operational"] <= 1, key
            assert scope["rooms_sold"] <= scope["rooms_available_operational"], key


def test_guests_arrivals_and_revenue_are_plausible(month: dict[str, Any]) -> None:
    monthly = month["reports"]["monthly", FIRST]
    assert 0 < monthly["guests"] <= monthly["rooms_sold"]
    assert Decimal(1) <= monthly["average_stay_duration"] <= Decimal(7)
    assert monthly["other_revenue"] > 0 and monthly["out_of_order_room_nights"] > 0
    assert monthly["total_revenue"] == monthly["room_revenue"] + monthly["other_revenue"]


def _documents(month: dict[str, Any], kind: str) -> list[tuple[int, dict[str, Any]]]:
    return [(index, e.document) for index, e in enumerate(month["events"])
            if e.document["type"] == kind]


def test_no_room_is_given_twice(month: dict[str, Any]) -> None:
    """Per room and night at most one booking (even one cancelled or cut short) or repair:
    the generator never oversells a type, whatever is cancelled."""
    taken: Counter[tuple[str, date]] = Counter()
    for _, document in _documents(month, "reservation"):
        data = document["data"]
        if data["version"] != 1:
            continue
        night = date.fromisoformat(data["checkin_date"])
        while night < date.fromisoformat(data["checkout_date"]):
            taken[data["room_number"], night] += 1
            night += timedelta(days=1)
    for _, document in _documents(month, "room"):
        data = document["data"]
        if data["status"] == "out_of_order":
            taken[data["room_number"], date.fromisoformat(data["availability_date"])] += 1
    assert taken and max(taken.values()) == 1


def test_stays_move_in_a_valid_order(month: dict[str, Any]) -> None:
    booked: dict[str, int] = {}
    moved: dict[str, tuple[int, str]] = {}
    created_rooms = {d["data"]["room_id"]: i for i, d in _documents(month, "room")
                     if d["data"]["version"] == 1}
    for _, document in _documents(month, "reservation"):
        data, reservation_id = document["data"], document["data"]["reservation_id"]
        assert data["version"] > booked.get(reservation_id, 0), reservation_id
        assert reservation_id not in moved, f"{reservation_id} changed after it moved"
        booked[reservation_id] = data["version"]
    for index, document in _documents(month, "checkin_checkout"):
        data, action = document["data"], document["action"]
        assert document["correlation_id"] == data["reservation_id"]
        previous = moved.get(data["reservation_id"])
        if action == "checked_out":
            assert previous is not None and previous[1] == "checked_in", data
            assert data["actual_checkout_time"] > data["actual_checkin_time"]
        else:
            assert previous is None, data
        if action == "checked_in":
            assert created_rooms[data["room_id"]] < index
        moved[data["reservation_id"]] = (index, action)


def test_some_check_ins_are_published_late(month: dict[str, Any]) -> None:
    """A late check-in comes after an event that happened after it."""
    events = month["events"]
    latest = events[0].document["occurred_at"]
    late = checkins = 0
    for event in events:
        moment = event.document["occurred_at"]
        if event.document["action"] == "checked_in":
            checkins += 1
            late += moment < latest - timedelta(hours=2)
        latest = max(latest, moment)
    assert 0.005 * checkins <= late <= 0.05 * checkins, (late, checkins)


def test_the_hub_accepts_every_event_of_the_month(month: dict[str, Any]) -> None:
    """Applied in publish order by the hub's own step, no event is refused."""
    from streams.core.documents import build_event
    from streams.core.rules import RuleSettings
    from streams.core.step import apply_event

    rules = RuleSettings(timezone=month["timezone"], order_grace_s=0)
    state: dict[Any, Any] = {}
    refusals: list[str] = []
    clock = None
    for event in month["events"]:
        moment = event.document["occurred_at"]
        clock = moment if clock is None or moment > clock else clock
        hotel_event = build_event(event.document, publisher=event.system,
                                  default_hotel_id=month["hotel_id"],
                                  now=clock + timedelta(seconds=1))
        step = apply_event(hotel_event, lambda tag, key: state.get((tag, key)), rules)
        state.update(step.changes)
        refusals += [refusal.reason for refusal in step.refusals]
    assert refusals == [], f"{len(refusals)} of {len(month['events'])} refused: {refusals[:3]}"
