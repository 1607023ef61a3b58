"""Revenue and occupancy reports for the marketing and loyalty systems."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from faust.types import AgentT, StreamT

from streams.core.models import HotelEvent
from streams.worker.decoding import decoded
from streams.worker.hub import Hub


def install(hub: Hub) -> AgentT[Any]:
    @hub.app.agent(hub.channels.analytics, name="agents.analytics.collect_reports")
    async def collect_reports(reports: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
        async for report in decoded(reports, settings=hub.settings, codec=hub.codec,
                                    deadletters=hub.channels.deadletter):
            yield report

    hub.event_agents.append(collect_reports)
    return collect_reports
