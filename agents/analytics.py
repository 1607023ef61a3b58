"""Revenue and occupancy reports for the marketing and loyalty systems."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.app import app
from streams.channels import analytics_topic
from streams.consumer import decoded
from streams.models import HotelEvent


@app.agent(analytics_topic)
async def collect_reports(reports: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    async for report in decoded(reports):
        yield report
