"""Customer changes; hotel-member owns the data."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.app import app
from streams.channels import customer_topic
from streams.consumer import decoded
from streams.kinds import EventKind
from streams.models import HotelEvent


@app.agent(customer_topic)
async def sync_customers(customers: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    async for customer in decoded(customers, EventKind.CUSTOMER):
        yield customer
