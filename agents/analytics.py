"""Revenue and occupancy reports for the marketing and loyalty systems."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.core.models import HotelEvent
from streams.worker.app import app
from streams.worker.channels import analytics_topic
from streams.worker.decoding import decoded


@app.agent(analytics_topic)
async def collect_reports(reports: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    async for report in decoded(reports):
        yield report
