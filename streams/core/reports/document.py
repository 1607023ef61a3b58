"""A report as the design's AnalyticsEvent: the figures, the KPIs as contract evolutions,
and the breakdown (room types, days) as `detailed_data` JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python

from streams.core.kinds import EventKind, System
from streams.core.reports.periods import SCHEDULES, ReportPeriod
from streams.core.rules.outcome import derived_id

REPORT_TYPE = "revenue_occupancy"
DEFINITIONS = ("STR/USALI: supply includes out-of-order rooms; room revenue recognised per "
               "stay night; other revenue on the day of check-out; ratios from summed figures")


def report_id(hotel_id: str, period: ReportPeriod) -> str:
    """Stable per hotel, period kind and start: every version of a report shares it."""
    return f"{hotel_id}:{period.period}:{period.start.isoformat()}"


def report_event_id(report: str, version: int) -> str:
    """The same report version always has the same event id, so a resend is recognised."""
    return str(derived_id(report, f"report-v{version}"))


def report_document(figures: Mapping[str, Any], period: ReportPeriod, *, timezone: str,
                    version: int, supersedes: str | None, generated_at: datetime
                    ) -> dict[str, Any]:
    """The analytics event document (`HotelEventPublisher.publish_document`) of a report."""
    hotel_id = str(figures["hotel_id"])
    schedule, action, _ = SCHEDULES[period.period]
    rid = report_id(hotel_id, period)
    details = {"definitions": DEFINITIONS, "room_types": figures["room_types"],
               "guests": figures["guests"], "arrival_nights": figures["arrival_nights"],
               "room_revenue_on_the_books": figures["room_revenue_on_the_books"]}
    if "days" in figures:
        details["days"] = figures["days"]
    data = {
        "report_id": rid, "report_type": REPORT_TYPE, "schedule": schedule,
        "period_start": period.start, "period_end": period.end,
        "total_revenue": figures["total_revenue"], "currency": figures["currency"],
        "occupancy_rate": figures["occupancy_rate"], "customer_count": figures["guests"],
        "average_stay_duration": figures["average_stay_duration"],
        "detailed_data": json.dumps(to_jsonable_python(details), separators=(",", ":")),
        "generated_by_system": System.HOTEL_HUB.value, "generated_at": generated_at,
        "version": version, "supersedes": supersedes, "timezone": timezone,
        **{name: figures[name] for name in (
            "rooms_available", "rooms_available_operational", "out_of_order_room_nights",
            "rooms_sold", "room_revenue", "other_revenue", "occupancy_rate_operational",
            "adr", "revpar", "arrivals", "rooms_on_the_books")},
    }
    return {"type": EventKind.ANALYTICS.value, "action": action.value, "hotel_id": hotel_id,
            "event_id": report_event_id(rid, version), "occurred_at": generated_at,
            "correlation_id": rid, "causation_id": supersedes, "data": data}
