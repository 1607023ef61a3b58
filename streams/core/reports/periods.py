"""Report periods and when each report is due, in the hotel's time zone.

- daily: one business day, due at 23:00 that day;
- weekly: Sunday to Saturday (STR's week), due at 01:00 on the Sunday after;
- monthly: a calendar month, due at 02:00 on the 1st of the next month.

Local times follow cron's rules across daylight-saving changes: a time that does not
exist that day (clocks jump past it) fires when the jump lands; a time that happens twice
(clocks go back) fires once, the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from streams.core.models import AnalyticsAction, ReportSchedule


class Period(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


SCHEDULES = {
    Period.DAILY: (ReportSchedule.DAILY, AnalyticsAction.DAILY_REPORT, "0 23 * * *"),
    Period.WEEKLY: (ReportSchedule.WEEKLY, AnalyticsAction.WEEKLY_REPORT, "0 1 * * 0"),
    Period.MONTHLY: (ReportSchedule.MONTHLY, AnalyticsAction.MONTHLY_REPORT, "0 2 1 * *"),
}
"""Each period's schedule, the action of its analytics event, and its crontab (docs)."""


@dataclass(frozen=True, order=True)
class ReportPeriod:
    period: Period
    start: date

    @property
    def end(self) -> date:
        """The last day, inclusive."""
        if self.period is Period.DAILY:
            return self.start
        if self.period is Period.WEEKLY:
            return self.start + timedelta(days=6)
        return _next_month(self.start) - timedelta(days=1)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def fires_at(self, timezone: str) -> datetime:
        """When the report of this period is due (aware, UTC)."""
        if self.period is Period.DAILY:
            return local_instant(self.start, time(23), timezone)
        if self.period is Period.WEEKLY:
            return local_instant(self.end + timedelta(days=1), time(1), timezone)
        return local_instant(self.end + timedelta(days=1), time(2), timezone)

    def label(self) -> str:
        return f"{self.period}:{self.start.isoformat()}"


def period_of(period: Period | str, day: date) -> ReportPeriod:
    """The period of kind `period` that `day` falls in."""
    kind = Period(period)
    if kind is Period.DAILY:
        return ReportPeriod(kind, day)
    if kind is Period.WEEKLY:
        return ReportPeriod(kind, day - timedelta(days=(day.weekday() + 1) % 7))
    return ReportPeriod(kind, day.replace(day=1))


def periods_containing(day: date) -> list[ReportPeriod]:
    return [period_of(kind, day) for kind in Period]


def local_instant(day: date, at: time, timezone: str) -> datetime:
    """`day` at local `at` in `timezone`, by cron's rules across daylight-saving changes.

    fold=0 reads a repeated wall time as its first occurrence, and a wall time that does
    not exist with the offset before the jump: the instant the jump lands."""
    return datetime.combine(day, at, ZoneInfo(timezone)).replace(fold=0).astimezone(UTC)


def due(timezone: str, *, after: datetime, until: datetime, first_day: date
        ) -> list[ReportPeriod]:
    """Periods of a hotel whose first business day is `first_day` (none ending before it)
    whose report falls due in (after, until], in the order they fall due.

    A report falls due at most a day and two hours after its period ends, so every one due
    after `after` holds a day from the day before `after` on."""
    zone = ZoneInfo(timezone)
    start = max(first_day, after.astimezone(zone).date() - timedelta(days=1))
    last = until.astimezone(zone).date()
    periods = {period_of(kind, start + timedelta(days=n))
               for n in range((last - start).days + 1) for kind in Period}
    return sorted((period for period in periods
                   if period.end >= first_day and after < period.fires_at(timezone) <= until),
                  key=lambda period: (period.fires_at(timezone), period))


def next_fire(timezones: set[str], now: datetime) -> datetime:
    """The next instant after `now` at which any report falls due in any of `timezones`
    (a daily report falls due every day, so the next day holds one)."""
    fires = [period_of(kind, now.astimezone(ZoneInfo(timezone)).date() + timedelta(days=n)
                       ).fires_at(timezone)
             for timezone in timezones for n in (-1, 0, 1, 2) for kind in Period]
    return min(fire for fire in fires if fire > now)


def _next_month(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)
