"""Availability per room type and night, summed from the deltas rooms and stays send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from faust.types import StreamT

from streams.app import app
from streams.channels import inventory_delta_topic
from streams.state import AvailabilityState, InventoryDelta, apply_delta, table_key
from streams.tables import read, room_type_to_availability, write


@app.agent(inventory_delta_topic)
async def count_availability(deltas: StreamT[Any]) -> AsyncIterator[InventoryDelta]:
    async for raw in deltas:
        delta = InventoryDelta.model_validate(raw)
        key = table_key(delta.hotel_id, delta.room_type).encode()
        current = read(room_type_to_availability, key, AvailabilityState)
        write(room_type_to_availability, key, apply_delta(current, delta))
        yield delta
