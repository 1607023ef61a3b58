"""One module per agent; importing this package registers them all with the app."""

from __future__ import annotations

from agents.analytics import collect_reports
from agents.checkin_checkout import record_stay_movements
from agents.customer import sync_customers
from agents.reservation import sync_reservations
from agents.room import sync_rooms
from streams.kinds import EventKind

AGENTS = {
    EventKind.RESERVATION: sync_reservations,
    EventKind.CUSTOMER: sync_customers,
    EventKind.ROOM: sync_rooms,
    EventKind.CHECKIN_CHECKOUT: record_stay_movements,
    EventKind.ANALYTICS: collect_reports,
}

__all__ = ["AGENTS"]
