"""Reservations from every system, in per-booking order."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.app import app
from streams.channels import reservation_topic
from streams.consumer import decoded
from streams.kinds import EventKind
from streams.models import HotelEvent


@app.agent(reservation_topic)
async def sync_reservations(reservations: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    async for reservation in decoded(reservations, EventKind.RESERVATION):
        yield reservation
