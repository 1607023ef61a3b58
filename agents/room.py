"""Rooms: hotel-pms's changes and the hub's own status changes after check-in/out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.app import app
from streams.channels import room_topic
from streams.consumer import decoded
from streams.effects import publish_outcome
from streams.models import HotelEvent, RoomEvent, record_key
from streams.rules import apply_room
from streams.state import RoomState
from streams.tables import read, room_to_state, write


@app.agent(room_topic)
async def track_rooms(rooms: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    async for room in decoded(rooms):
        if not isinstance(room, RoomEvent):
            continue
        key = record_key(room)
        outcome = apply_room(read(room_to_state, key, RoomState), room)
        if outcome.state is not None:
            write(room_to_state, key, outcome.state)
        await publish_outcome(outcome)
        yield room
