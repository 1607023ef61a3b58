"""Check-ins, check-outs and no-shows: the design's CRITICAL, exactly-once events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.app import app
from streams.channels import checkin_checkout_topic
from streams.consumer import decoded
from streams.kinds import EventKind
from streams.models import HotelEvent


@app.agent(checkin_checkout_topic)
async def record_stay_movements(movements: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    async for movement in decoded(movements, EventKind.CHECKIN_CHECKOUT):
        yield movement
