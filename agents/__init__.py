"""One module per agent; importing this package registers them all with the app."""

from __future__ import annotations

from agents.analytics import collect_reports
from agents.availability import count_availability
from agents.customer import track_customers
from agents.room import track_rooms
from agents.stay import track_stays

EVENT_AGENTS = (track_stays, track_customers, track_rooms, collect_reports)
"""The agents that consume the public event topics and yield each event they processed."""

__all__ = ["EVENT_AGENTS", "count_availability"]
