"""One module per agent; importing this package registers them all with the app."""

from __future__ import annotations

from agents.analytics import collect_reports
from agents.hotel import mirror_hotel_state, track_hotels

EVENT_AGENTS = (track_hotels, collect_reports)
"""What consumes the public event topics and hands each processed event to its sinks."""

__all__ = ["EVENT_AGENTS", "mirror_hotel_state", "track_hotels"]
