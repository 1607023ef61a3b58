"""Revenue and occupancy reports for the marketing and loyalty systems."""

from __future__ import annotations

from typing import Any

from faust.types import AgentT, StreamT
from mode.utils.futures import maybe_async

from streams.core.models import HotelEvent
from streams.worker.decoding import decoded
from streams.worker.hub import Hub, Sink


class ReportSinks:
    """The agent's sinks, called by the agent itself with each decoded report.

    The agent does not yield its reports to Faust: every value an agent yields costs Faust's
    `Agent._slurp` a debug log line formatted whether or not debug is on, a look-up of the
    active stream and its current event and a reply-to check, about as much as decoding the
    report. The report is handed to the sinks before the agent reads the next record, so
    Faust acknowledges a record only after its sinks saw it, as before.
    """

    def __init__(self) -> None:
        self.sinks: list[Sink] = []

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    async def deliver(self, report: HotelEvent) -> None:
        for sink in self.sinks:
            await maybe_async(sink(report))


def install(hub: Hub) -> AgentT[Any]:
    sinks = ReportSinks()

    @hub.app.agent(hub.channels.analytics, name="agents.analytics.collect_reports")
    async def collect_reports(reports: StreamT[bytes]) -> None:
        async for report in decoded(reports, settings=hub.settings, codec=hub.codec,
                                    deadletters=hub.channels.deadletter):
            if sinks.sinks:
                await sinks.deliver(report)

    hub.event_agents.append(sinks)
    return collect_reports
