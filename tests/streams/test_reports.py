"""Reports (issue 9) without a broker: the schedule against an injected clock, the money
rules, facts folded as the report agent folds them, a whole simulated month against the
independent oracle (`tests.support.report_oracle`), and the report's analytics event."""

from __future__ import annotations

import bisect
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import schema_text
from streams.core.documents import build_event
from streams.core.kinds import System
from streams.core.limits import Limits
from streams.core.models import AnalyticsEvent, ReservationStatus
from streams.core.reports.document import report_document, report_event_id, report_id
from streams.core.reports.figures import report_figures
from streams.core.reports.money import (
    NIGHTS_PLACES,
    RATE_PLACES,
    minor_unit,
    night_share,
    per_unit,
    ratio,
    to_currency,
)
from streams.core.reports.periods import (
    Period,
    ReportPeriod,
    due,
    next_fire,
    period_of,
)
from streams.core.reports.shares import (
    DayFact,
    DayShare,
    RoomFact,
    stay_facts,
    stay_shares,
    summed,
)
from streams.core.rules import RuleSettings
from streams.core.simulation import SimulatedEvent
from streams.core.state import ReservationState
from streams.core.step import apply_event
from streams.wire.codec import parse_schema
from tests.support.month import hotel_month
from tests.support.report_oracle import ADDITIVE, expected_report, periods_of_month

# --- 1. the schedule, against an injected clock -----------------------------------------

STEP = timedelta(minutes=5)
HOURS = {Period.DAILY: 23, Period.WEEKLY: 1, Period.MONTHLY: 2}


def cron_instant(day: date, hour: int, timezone: str) -> datetime:
    """Independently of `periods`: the first UTC quarter hour at which the local wall clock
    reads `day` at `hour` or later (cron: a skipped time fires when the jump lands, a
    repeated one the first time)."""
    zone, target = ZoneInfo(timezone), datetime.combine(day, time(hour))
    moment = datetime.combine(day - timedelta(days=1), time(0), UTC)
    while moment.astimezone(zone).replace(tzinfo=None) < target:
        moment += timedelta(minutes=15)
    return moment


def expected_fire(period: ReportPeriod, timezone: str) -> datetime:
    """Daily: 23:00 that day; weekly: 01:00 the Sunday after; monthly: 02:00 on the next 1st."""
    if period.period is Period.DAILY:
        return cron_instant(period.start, 23, timezone)
    if period.period is Period.WEEKLY:
        assert period.start.weekday() == 6, period
        return cron_instant(period.start + timedelta(days=7), 1, timezone)
    assert period.start.day == 1, period
    following = date(period.start.year + period.start.month // 12,
                     period.start.month % 12 + 1, 1)
    return cron_instant(following, 2, timezone)


def periods_around(first: date, last: date) -> set[ReportPeriod]:
    """Every period holding a day from `first` to `last`."""
    return {period_of(kind, first + timedelta(days=n))
            for n in range((last - first).days + 1) for kind in Period}


@dataclass(frozen=True)
class Span:
    timezone: str
    start: datetime
    end: datetime
    first_day: date


SPANS = {
    "tokyo-month-end": Span("Asia/Tokyo", datetime(2026, 9, 24, tzinfo=UTC),
                            datetime(2026, 10, 6, tzinfo=UTC), date(2026, 9, 23)),
    "london-clocks-back": Span("Europe/London", datetime(2026, 10, 20, tzinfo=UTC),
                               datetime(2026, 11, 3, 12, tzinfo=UTC), date(2026, 10, 21)),
    "london-clocks-forward": Span("Europe/London", datetime(2026, 3, 21, tzinfo=UTC),
                                  datetime(2026, 4, 3, tzinfo=UTC), date(2026, 3, 25)),
    "new-york-clocks-back": Span("America/New_York", datetime(2026, 10, 26, tzinfo=UTC),
                                 datetime(2026, 11, 9, tzinfo=UTC), date(2026, 10, 28)),
}


@pytest.mark.parametrize("name", sorted(SPANS))
def test_every_report_falls_due_exactly_once_at_its_local_time(name: str) -> None:
    """Stepping a clock by 5 minutes, each period (none ending before first_day) is due once,
    at 23:00 / Sunday 01:00 / 1st 02:00 local by cron's DST rules, and in fire order."""
    span = SPANS[name]
    zone = ZoneInfo(span.timezone)
    fired: dict[ReportPeriod, list[datetime]] = {}
    previous = span.start
    while previous < span.end:
        now = previous + STEP
        found = due(span.timezone, after=previous, until=now, first_day=span.first_day)
        fires = [period.fires_at(span.timezone) for period in found]
        assert fires == sorted(fires), (now, found)
        for period in found:
            fired.setdefault(period, []).append(now)
        previous = now
    candidates = periods_around(span.first_day - timedelta(days=40), span.end.date())
    expected = {period: expected_fire(period, span.timezone) for period in candidates
                if period.end >= span.first_day
                and span.start < expected_fire(period, span.timezone) <= span.end}
    assert set(fired) == set(expected)
    kinds = {kind: sum(1 for period in fired if period.period is kind) for kind in Period}
    assert kinds[Period.DAILY] >= 7 and kinds[Period.WEEKLY] >= 1, kinds
    assert kinds[Period.MONTHLY] == 1, kinds
    for period, moments in fired.items():
        assert moments == [expected[period]], period
        assert period.fires_at(span.timezone) == expected[period], period
        assert period.end >= span.first_day
        local = expected[period].astimezone(zone)
        assert local.minute == 0 and local.hour in (HOURS[period.period],
                                                    HOURS[period.period] + 1), period
    assert any(period.start < span.first_day <= period.end for period in fired
               if period.period is Period.WEEKLY), "the week holding first_day is reported"


@pytest.mark.parametrize(("timezone", "period", "fires"), [
    # Clocks go back 2026-10-25 02:00 BST -> 01:00 GMT: 01:00 happens twice, fires the first.
    ("Europe/London", ReportPeriod(Period.WEEKLY, date(2026, 10, 18)),
     datetime(2026, 10, 25, 0, tzinfo=UTC)),
    ("Europe/London", ReportPeriod(Period.DAILY, date(2026, 10, 25)),
     datetime(2026, 10, 25, 23, tzinfo=UTC)),
    ("Europe/London", ReportPeriod(Period.MONTHLY, date(2026, 10, 1)),
     datetime(2026, 11, 1, 2, tzinfo=UTC)),
    # Clocks jump 2026-03-29 01:00 GMT -> 02:00 BST: Sunday 01:00 fires at 02:00 BST.
    ("Europe/London", ReportPeriod(Period.WEEKLY, date(2026, 3, 22)),
     datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ("Europe/London", ReportPeriod(Period.DAILY, date(2026, 3, 29)),
     datetime(2026, 3, 29, 22, tzinfo=UTC)),
    ("Europe/London", ReportPeriod(Period.MONTHLY, date(2026, 3, 1)),
     datetime(2026, 4, 1, 1, tzinfo=UTC)),
    # New York goes back 2026-11-01 02:00 EDT -> 01:00 EST.
    ("America/New_York", ReportPeriod(Period.WEEKLY, date(2026, 10, 25)),
     datetime(2026, 11, 1, 5, tzinfo=UTC)),
    ("America/New_York", ReportPeriod(Period.MONTHLY, date(2026, 10, 1)),
     datetime(2026, 11, 1, 7, tzinfo=UTC)),
    ("America/New_York", ReportPeriod(Period.DAILY, date(2026, 11, 1)),
     datetime(2026, 11, 2, 4, tzinfo=UTC)),
    ("Asia/Tokyo", ReportPeriod(Period.MONTHLY, date(2026, 9, 1)),
     datetime(2026, 9, 30, 17, tzinfo=UTC)),
    ("Asia/Tokyo", ReportPeriod(Period.DAILY, date(2026, 10, 31)),
     datetime(2026, 10, 31, 14, tzinfo=UTC)),
])
def test_fire_instants_across_daylight_saving_changes(
        timezone: str, period: ReportPeriod, fires: datetime) -> None:
    """Hand-computed UTC instants of reports around DST changes and month ends."""
    assert period.fires_at(timezone) == fires
    assert expected_fire(period, timezone) == fires


@pytest.mark.parametrize("zones", [
    {"Asia/Tokyo"}, {"Europe/London"}, {"America/New_York"},
    {"Asia/Tokyo", "Europe/London", "America/New_York"},
])
def test_next_fire_is_the_next_due_instant_in_any_zone(zones: set[str]) -> None:
    """next_fire(zones, now) is the earliest report instant after now in any of the zones."""
    spans = [(datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC)),
             (datetime(2026, 10, 22, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))]
    for start, end in spans:
        instants = sorted({expected_fire(period, timezone) for timezone in zones
                           for period in periods_around(start.date() - timedelta(days=40),
                                                        end.date() + timedelta(days=3))})
        now = start
        while now < end:
            expected = instants[bisect.bisect_right(instants, now)]
            assert next_fire(zones, now) == expected, now
            now += STEP


def test_due_leaves_out_periods_ending_before_the_first_day() -> None:
    """A wide catch-up window reports no period ending before first_day, but the week and
    month that hold first_day are reported."""
    first_day = date(2026, 10, 21)  # a Wednesday
    found = due("Europe/London", after=datetime(2026, 9, 1, tzinfo=UTC),
                until=datetime(2026, 11, 2, 12, tzinfo=UTC), first_day=first_day)
    assert found and all(period.end >= first_day for period in found)
    assert ReportPeriod(Period.WEEKLY, date(2026, 10, 18)) in found
    assert ReportPeriod(Period.MONTHLY, date(2026, 10, 1)) in found
    assert ReportPeriod(Period.WEEKLY, date(2026, 10, 11)) not in found
    assert min(p.start for p in found if p.period is Period.DAILY) == first_day
    # A hotel whose first day is a Sunday: the week before it is not reported.
    sunday = due("Asia/Tokyo", after=datetime(2026, 10, 24, tzinfo=UTC),
                 until=datetime(2026, 10, 26, tzinfo=UTC), first_day=date(2026, 10, 25))
    assert ReportPeriod(Period.WEEKLY, date(2026, 10, 18)) not in sunday
    assert ReportPeriod(Period.DAILY, date(2026, 10, 25)) in sunday


# --- 2. money -----------------------------------------------------------------------------

CURRENCIES = {"JPY": 0, "GBP": 2, "KWD": 3}


@settings(max_examples=300, deadline=None)
@given(units=st.integers(min_value=0, max_value=10**9), nights=st.integers(1, 60),
       currency=st.sampled_from(sorted(CURRENCIES)))
def test_night_shares_add_up_to_the_amount_and_differ_by_one_minor_unit_at_most(
        units: int, nights: int, currency: str) -> None:
    """Cumulative rounding: a stay's night shares sum exactly to its amount, each in the
    currency's minor unit, no two more than one minor unit apart."""
    unit = minor_unit(currency)
    assert unit == Decimal(1).scaleb(-CURRENCIES[currency])
    amount = Decimal(units).scaleb(-CURRENCIES[currency])
    shares = [night_share(amount, night, nights, currency) for night in range(nights)]
    assert sum(shares) == amount
    assert max(shares) - min(shares) <= unit
    assert all(share >= 0 and share == share.quantize(unit) for share in shares)


def test_minor_units_and_half_up_rounding() -> None:
    """JPY has no decimals, GBP two, KWD three; amounts round half up."""
    assert (minor_unit("JPY"), minor_unit("GBP"), minor_unit("kwd")) == (
        Decimal(1), Decimal("0.01"), Decimal("0.001"))
    assert to_currency(Decimal("0.5"), "JPY") == 1
    assert to_currency(Decimal("0.125"), "GBP") == Decimal("0.13")
    assert to_currency(Decimal("0.0005"), "KWD") == Decimal("0.001")
    with pytest.raises(ValueError, match="nights"):
        night_share(Decimal(100), 3, 3, "JPY")


@pytest.mark.parametrize("places", [RATE_PLACES, NIGHTS_PLACES, Decimal(1), Decimal("0.001")])
def test_a_ratio_of_no_whole_is_zero(places: Decimal) -> None:
    """ratio(part, 0) is 0 at the asked places, whatever the part; per_unit of 0 units too."""
    for part in (0, 7, Decimal("12.34")):
        assert ratio(part, 0, places) == 0
        assert ratio(part, 0, places).as_tuple().exponent == places.as_tuple().exponent
    assert ratio(1, 3, RATE_PLACES) == Decimal("0.3333")
    assert ratio(2, 3, RATE_PLACES) == Decimal("0.6667")
    assert per_unit(Decimal(100), 0, "GBP") == 0


# --- 3. a stay's facts, folded as the report agent folds them -----------------------------

Table = dict[tuple[str, date], dict[str, dict[str, Any]]]
"""(room type, day) -> source -> share JSON: `Reports.take_day`'s table without Faust."""


def fold(facts: Iterable[DayFact], table: Table | None = None) -> Table:
    """Each fact replaces its source's share of its day (None removes it), as take_day."""
    days: Table = {key: dict(entries) for key, entries in (table or {}).items()}
    for fact in facts:
        entries = dict(days.get((fact.room_type, fact.day), {}))
        if fact.share is None:
            entries.pop(fact.source, None)
        else:
            entries[fact.source] = fact.share.to_json()
        days[fact.room_type, fact.day] = entries
    return {key: entries for key, entries in days.items() if entries}


def table_of(*stays: ReservationState) -> Table:
    """What the final states contribute, straight from stay_shares."""
    days: Table = {}
    for stay in stays:
        for key, share in stay_shares(stay).items():
            days.setdefault(key, {})[f"stay:{stay.reservation_id}"] = share.to_json()
    return days


ON_THE_BOOKS = [ReservationStatus.TENTATIVE, ReservationStatus.CONFIRMED,
                ReservationStatus.GUARANTEED]


@st.composite
def stay_versions(draw: st.DrawFn, reservation_id: str = "B1") -> list[ReservationState]:
    """A stay's states as the hub keeps them: booked and changed, then cancelled, a no-show,
    still booked, in house, or checked out on time, early or late."""
    currency = draw(st.sampled_from(sorted(CURRENCIES)))

    def amount() -> Decimal:
        return Decimal(draw(st.integers(0, 10**7))).scaleb(-CURRENCIES[currency])

    def booking() -> dict[str, Any]:
        checkin = date(2026, 10, 1) + timedelta(days=draw(st.integers(0, 40)))
        return {"room_type": draw(st.sampled_from(["DBL", "STE"])), "checkin_date": checkin,
                "checkout_date": checkin + timedelta(days=draw(st.integers(1, 14))),
                "total_amount": amount(), "status": draw(st.sampled_from(ON_THE_BOOKS))}

    state = ReservationState(hotel_id="H1", reservation_id=reservation_id, currency=currency,
                             customer_id=draw(st.sampled_from([None, "C1", "C2"])),
                             version=1, **booking())
    versions = [state]

    def then(**update: Any) -> ReservationState:
        nonlocal state
        state = state.model_copy(update={"version": state.version + 1, **update})
        versions.append(state)
        return state

    for _ in range(draw(st.integers(0, 3))):
        then(**booking())
    outcome = draw(st.sampled_from(["booked", "cancelled", "no_show", "in_house", "out"]))
    if outcome == "cancelled":
        then(status=ReservationStatus.CANCELLED)
    elif outcome == "no_show":
        then(status=ReservationStatus.NO_SHOW)
    elif outcome in ("in_house", "out"):
        assert state.checkin_date is not None and state.checkout_date is not None
        arrived = datetime.combine(state.checkin_date, time(15), UTC)
        then(status=ReservationStatus.CHECKED_IN, actual_checkin_time=arrived)
        if draw(st.booleans()):
            then(total_amount=amount())  # a rate changed while the guest is in
        if outcome == "out":
            booked = (state.checkout_date - state.checkin_date).days
            left = state.checkin_date + timedelta(days=draw(st.integers(0, booked + 1)))
            then(status=ReservationStatus.CHECKED_OUT, departure_date=left,
                 actual_checkout_time=datetime.combine(left, time(10), UTC),
                 additional_charges=draw(st.sampled_from([None, Decimal(0), amount()])))
    return versions


def facts_of(versions: Sequence[ReservationState]) -> list[DayFact]:
    facts: list[DayFact] = []
    before: ReservationState | None = None
    for after in versions:
        facts += stay_facts(before, after)
        before = after
    return facts


@settings(max_examples=300, deadline=None)
@given(versions=stay_versions(), data=st.data())
def test_a_stays_facts_fold_to_its_final_shares_however_often_they_are_applied(
        versions: list[ReservationState], data: st.DataObject) -> None:
    """Facts are absolute: folded in order they give stay_shares(final state); a fact
    applied twice, a replay from any earlier offset, or the whole sequence again change
    nothing."""
    facts = facts_of(versions)
    expected = table_of(versions[-1])
    assert fold(facts) == expected
    assert all(fact.source == "stay:B1" and fact.hotel_id == "H1" for fact in facts)
    assert fold(facts + facts) == expected
    assert fold(facts, fold(facts)) == expected
    if facts:
        again = data.draw(st.integers(0, len(facts) - 1), label="fact applied twice")
        assert fold([*facts[:again + 1], facts[again], *facts[again + 1:]]) == expected
        read = data.draw(st.integers(0, len(facts)), label="offset reached")
        committed = data.draw(st.integers(0, read), label="offset committed")
        assert fold(facts[:read] + facts[committed:]) == expected
    # A version applied again (a redelivered event) decides no new fact.
    assert stay_facts(versions[-1], versions[-1]) == []


@settings(max_examples=150, deadline=None)
@given(first=stay_versions("B1"), second=stay_versions("B2"), data=st.data())
def test_two_stays_facts_interleaved_keep_each_stays_share(
        first: list[ReservationState], second: list[ReservationState],
        data: st.DataObject) -> None:
    """Two stays' facts in any interleaving fold to both stays' shares, side by side."""
    ours, theirs = facts_of(first), facts_of(second)
    order = data.draw(st.permutations([0] * len(ours) + [1] * len(theirs)), label="order")
    streams = [iter(ours), iter(theirs)]
    merged = [next(streams[which]) for which in order]
    assert fold(merged) == table_of(first[-1], second[-1])


# --- 4. a simulated month, folded as the agent folds it, against the oracle ---------------

FIRST = date(2026, 10, 1)
HOTELS = {"tokyo": ("H-TYO", "Asia/Tokyo", "JPY"), "london": ("H-LON", "Europe/London", "GBP")}


@dataclass
class AgentTables:
    """`agents.reports.Reports`' tables as plain dicts, fed with the facts' JSON."""

    days: dict[tuple[str, date], dict[str, Any]] = field(default_factory=dict)
    supply: dict[str, dict[str, str]] = field(default_factory=dict)
    types: set[str] = field(default_factory=set)

    def take(self, fact: DayFact | RoomFact) -> None:
        wire = json.loads(fact.model_dump_json())  # as the facts topic carries it
        if isinstance(fact, DayFact):
            fact = DayFact.model_validate(wire)
            entries = dict(self.days.get((fact.room_type, fact.day), {}))
            if fact.share is None:
                entries.pop(fact.source, None)
            else:
                entries[fact.source] = fact.share.to_json()
            self.days[fact.room_type, fact.day] = json.loads(json.dumps(entries))
            self.types.add(fact.room_type)
        else:
            fact = RoomFact.model_validate(wire)
            rooms = dict(self.supply.get(fact.room_type) or {})
            if fact.since is None:
                rooms.pop(fact.room_id, None)
            else:
                rooms[fact.room_id] = fact.since.isoformat()
                self.types.add(fact.room_type)
            self.supply[fact.room_type] = rooms

    def figures(self, hotel_id: str, period: ReportPeriod, currency: str) -> dict[str, Any]:
        """As `Reports.figures`: every known type on every day of the period."""
        days = {day: {room_type: summed(DayShare.model_validate(share) for share in
                                        self.days.get((room_type, day), {}).values())
                      for room_type in sorted(self.types)}
                for day in period.days}
        supply = {room_type: {room: date.fromisoformat(since) for room, since in
                              self.supply.get(room_type, {}).items()}
                  for room_type in sorted(self.types)}
        return report_figures(hotel_id, period, days, supply, default_currency=currency)


@dataclass
class Month:
    hotel_id: str
    timezone: str
    currency: str
    reports: dict[ReportPeriod, dict[str, Any]]
    expected: dict[ReportPeriod, dict[str, Any]]


def run_hub(events: Sequence[SimulatedEvent], hotel_id: str, timezone: str) -> AgentTables:
    """The events through the hub's step in publish order, no broker (as
    test_report_oracle.py does), every step's facts folded as the report agent does."""
    rules = RuleSettings(timezone=timezone, order_grace_s=0)
    state: dict[Any, Any] = {}
    tables = AgentTables()
    refusals: list[str] = []
    clock: datetime | None = None
    for simulated in events:
        moment = simulated.document["occurred_at"]
        clock = moment if clock is None or moment > clock else clock
        event = build_event(simulated.document, publisher=simulated.system,
                            default_hotel_id=hotel_id, now=clock + timedelta(seconds=1))
        step = apply_event(event, lambda tag, key: state.get((tag, key)), rules)
        state.update(step.changes)
        refusals += [refusal.reason for refusal in step.refusals]
        for fact in step.facts:
            tables.take(fact)
    assert refusals == []
    return tables


@pytest.fixture(scope="module", params=sorted(HOTELS))
def month(request: pytest.FixtureRequest) -> Month:
    hotel_id, timezone, currency = HOTELS[request.param]
    events = hotel_month(hotel_id=hotel_id, timezone=timezone, currency=currency, first=FIRST)
    tables = run_hub(events, hotel_id, timezone)
    periods = [ReportPeriod(Period(kind), start) for kind, start in periods_of_month(FIRST)]
    return Month(
        hotel_id, timezone, currency,
        reports={period: tables.figures(hotel_id, period, currency) for period in periods},
        expected={period: expected_report(events, hotel_id=hotel_id, timezone=timezone,
                                          currency=currency, period=str(period.period),
                                          period_start=period.start)
                  for period in periods})


def test_the_months_reports_match_the_oracle(month: Month) -> None:
    """Every daily, weekly and monthly report of the month has the oracle's figures, for
    the hotel and each room type (Decimals by value)."""
    assert len(month.reports) == 31 + 5 + 1
    wrong: list[str] = []
    for period, expected in month.expected.items():
        report = month.reports[period]
        for key, value in expected.items():
            if key != "room_types" and report[key] != value:
                wrong.append(f"{period.label()} {key}: hub {report[key]!r}, oracle {value!r}")
        assert set(report["room_types"]) == set(expected["room_types"]), period
        for room_type, figures in expected["room_types"].items():
            for key, value in figures.items():
                got = report["room_types"][room_type][key]
                if got != value:
                    wrong.append(f"{period.label()} {room_type} {key}: hub {got!r}, "
                                 f"oracle {value!r}")
    assert wrong == [], f"{len(wrong)} differences, first: {wrong[:10]}"


def test_the_month_is_not_empty(month: Month) -> None:
    """The comparison means something: the month sold rooms, had repairs and charges."""
    monthly = month.reports[ReportPeriod(Period.MONTHLY, FIRST)]
    assert monthly["rooms_sold"] > 1000 and monthly["out_of_order_room_nights"] > 0
    assert monthly["other_revenue"] > 0 and monthly["currency"] == month.currency


def test_the_reports_types_add_up_to_the_hotel(month: Month) -> None:
    """Every additive figure of the hotel is the sum over its room types; guests are not
    additive (a hotel's guests are at most the types' sum)."""
    for period, report in month.reports.items():
        for figure in (*ADDITIVE, "rooms_on_the_books", "room_revenue_on_the_books"):
            assert report[figure] == sum(
                figures[figure] for figures in report["room_types"].values()), (period, figure)
        assert report["guests"] <= sum(f["guests"] for f in report["room_types"].values())


def test_the_reports_days_add_up_to_the_week_and_the_month(month: Month) -> None:
    """Additive figures of a week or the month are the sums of its days: of its own `days`
    breakdown, and of the daily reports of the days inside the month."""
    for period, report in month.reports.items():
        if period.period is Period.DAILY:
            continue
        days = report["days"]
        assert [entry["date"] for entry in days] == period.days
        dailies = [month.reports.get(ReportPeriod(Period.DAILY, day)) for day in period.days]
        for figure in ADDITIVE:
            assert report[figure] == sum(entry[figure] for entry in days), (period, figure)
            if all(daily is not None for daily in dailies):
                assert report[figure] == sum(
                    daily[figure] for daily in dailies if daily is not None), (period, figure)
                for room_type, figures in report["room_types"].items():
                    assert figures[figure] == sum(
                        daily["room_types"][room_type][figure]
                        for daily in dailies if daily is not None), (period, room_type, figure)


def small_hotel(customer_id: str | None) -> list[SimulatedEvent]:
    """One room, one two-night booking (with or without a customer), the guest checked in."""
    zone = ZoneInfo("Asia/Tokyo")
    at = datetime.combine(FIRST, time(15), zone)
    common = {"type": "checkin_checkout", "hotel_id": "H-S", "correlation_id": "B1"}
    return [
        SimulatedEvent(System.HOTEL_PMS, {
            "type": "room", "action": "status_changed", "hotel_id": "H-S",
            "occurred_at": at - timedelta(days=20), "correlation_id": None, "data": {
                "room_id": "R1", "room_number": "101", "room_type": "DBL",
                "status": "inspected", "availability_date": FIRST.isoformat(),
                "currency": "JPY", "version": 1}}),
        SimulatedEvent(System.HOTEL_SAAS, {
            "type": "reservation", "action": "created", "hotel_id": "H-S",
            "occurred_at": at - timedelta(days=10), "correlation_id": "B1", "data": {
                "reservation_id": "B1", "customer_id": customer_id, "room_type": "DBL",
                "room_number": "101", "checkin_date": FIRST.isoformat(),
                "checkout_date": (FIRST + timedelta(days=2)).isoformat(),
                "total_amount": "20001", "currency": "JPY", "status": "confirmed",
                "origin": "ota", "version": 1}}),
        SimulatedEvent(System.HOTEL_PMS, {
            **common, "action": "checked_in", "occurred_at": at, "data": {
                "reservation_id": "B1", "customer_id": customer_id, "room_number": "101",
                "room_id": "R1", "actual_checkin_time": at, "payment_status": "pending"}}),
    ]


@pytest.mark.parametrize("customer_id", ["C1", None])
def test_guests_count_distinct_customer_ids_only(customer_id: str | None) -> None:
    """guests = distinct customer_ids of sold stays in the scope (definitions, item 6): a
    sold stay with no customer_id sells its nights but counts no guest."""
    events = small_hotel(customer_id)
    tables = run_hub(events, "H-S", "Asia/Tokyo")
    for period in (ReportPeriod(Period.DAILY, FIRST), ReportPeriod(Period.MONTHLY, FIRST)):
        report = tables.figures("H-S", period, "JPY")
        expected = expected_report(events, hotel_id="H-S", timezone="Asia/Tokyo",
                                   currency="JPY", period=str(period.period),
                                   period_start=period.start)
        assert report["rooms_sold"] == expected["rooms_sold"] > 0
        assert report["room_revenue"] == expected["room_revenue"]
        assert report["guests"] == expected["guests"], period
        assert report["room_types"]["DBL"]["guests"] == expected["room_types"]["DBL"]["guests"]


# --- 5. the report as an analytics event ---------------------------------------------------


def test_a_monthly_report_is_a_valid_analytics_event_that_encodes(month: Month) -> None:
    """A 31-day monthly report builds into an AnalyticsEvent within the limits, encodes
    with the analytics contract and decodes back equal."""
    period = ReportPeriod(Period.MONTHLY, FIRST)
    figures = month.reports[period]
    generated = datetime(2026, 11, 1, 2, tzinfo=ZoneInfo(month.timezone))
    document = report_document(figures, period, timezone=month.timezone, version=1,
                               supersedes=None, generated_at=generated)
    event = build_event(document, publisher=System.HOTEL_HUB, default_hotel_id="X")
    assert isinstance(event, AnalyticsEvent)
    assert event.hotel_id == month.hotel_id and event.correlation_id == report_id(
        month.hotel_id, period)
    assert event.data.detailed_data is not None
    assert len(event.data.detailed_data) < Limits().max_document_length
    details = json.loads(event.data.detailed_data)
    assert len(details["days"]) == 31 and set(details["room_types"]) == set(
        figures["room_types"])
    assert event.data.total_revenue == figures["total_revenue"]
    assert event.data.rooms_sold == figures["rooms_sold"]
    assert event.data.adr == figures["adr"] and event.data.revpar == figures["revpar"]
    assert event.data.customer_count == figures["guests"]
    schema = parse_schema(schema_text("analytics"))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, event.model_dump(mode="python"))
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, None)
    assert AnalyticsEvent.model_validate(decoded) == event


def test_report_event_ids_are_stable_per_version() -> None:
    """The same report_id and version always give the same event_id; the next version,
    or another report, another one."""
    rid = report_id("H1", ReportPeriod(Period.MONTHLY, FIRST))
    assert rid == "H1:monthly:2026-10-01"
    assert report_event_id(rid, 1) == report_event_id(rid, 1)
    assert report_event_id(rid, 2) != report_event_id(rid, 1)
    other = report_id("H1", ReportPeriod(Period.WEEKLY, date(2026, 9, 27)))
    assert report_event_id(other, 1) != report_event_id(rid, 1)


def test_a_new_version_supersedes_the_last_with_its_own_event_id(month: Month) -> None:
    """Two documents of one version share their event_id; version 2 has a new one and
    names version 1's as the one it supersedes."""
    period = ReportPeriod(Period.WEEKLY, date(2026, 10, 4))
    figures = month.reports[period]
    at = datetime(2026, 10, 11, 1, tzinfo=ZoneInfo(month.timezone))
    first = report_document(figures, period, timezone=month.timezone, version=1,
                            supersedes=None, generated_at=at)
    resent = report_document(figures, period, timezone=month.timezone, version=1,
                             supersedes=None, generated_at=at + timedelta(minutes=5))
    second = report_document(figures, period, timezone=month.timezone, version=2,
                             supersedes=first["event_id"], generated_at=at + timedelta(hours=1))
    assert first["event_id"] == resent["event_id"]
    assert second["event_id"] != first["event_id"]
    assert second["causation_id"] == first["event_id"] == second["data"]["supersedes"]
    built = build_event(second, publisher=System.HOTEL_HUB, default_hotel_id="X")
    assert str(built.event_id) == second["event_id"]
    assert isinstance(built, AnalyticsEvent) and built.data.version == 2
