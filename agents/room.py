"""Room status, maintenance and price changes from hotel-pms."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.app import app
from streams.channels import room_topic
from streams.consumer import decoded
from streams.kinds import EventKind
from streams.models import HotelEvent


@app.agent(room_topic)
async def sync_rooms(rooms: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    async for room in decoded(rooms, EventKind.ROOM):
        yield room
