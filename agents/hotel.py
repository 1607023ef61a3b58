"""Hotels: stays, rooms, customers and inventory decided in transactions, mirrored for queries.

The rules run in `streams.runners.hotel_processor` (exactly-once, one transactional producer
per partition, every hotel in the partition its id hashes to); this agent copies its
committed state log into the queryable tables. Last value wins, so a redelivery
changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from faust.types import StreamT
from mode import Service
from pydantic import ValidationError

from streams.core.mirrored import mirror
from streams.core.step import AVAILABILITY, CUSTOMER, MODELS, ROOM, STAY
from streams.ops import health
from streams.runners.effects import split_state_key
from streams.runners.hotel_processor import HotelProcessor
from streams.settings import get_settings
from streams.worker.app import app
from streams.worker.channels import hotel_state_topic
from streams.worker.runtime import rule_settings, shared_codec
from streams.worker.tables import (
    customer_to_state,
    reservation_to_state,
    room_to_state,
    room_type_to_availability,
)

log = logging.getLogger(__name__)

track_hotels = HotelProcessor(get_settings(), shared_codec(), rule_settings())
track_hotels.on_failure(health.fatal)


def _processing_problem() -> str | None:
    if track_hotels.failure is not None:
        return f"hotel processing stopped: {track_hotels.failure!r}"
    return track_hotels.waiting


health.register(_processing_problem)

TABLE_BY_TAG = {
    STAY: reservation_to_state, ROOM: room_to_state, CUSTOMER: customer_to_state,
    AVAILABILITY: room_type_to_availability,
}


@app.service
class HotelProcessing(Service):
    """Runs the hotel processor for as long as the worker runs."""

    async def on_start(self) -> None:
        await track_hotels.start()

    async def on_stop(self) -> None:
        await track_hotels.stop()


@app.agent(hotel_state_topic)
async def mirror_hotel_state(states: StreamT[Any]) -> AsyncIterator[bytes]:
    async for state in states.events():
        if not isinstance(state.key, bytes):
            continue
        tag, key = split_state_key(state.key)
        table = TABLE_BY_TAG.get(tag)
        if table is None:
            continue  # the processor's own bookkeeping (events waiting for their room)
        try:
            MODELS[tag].model_validate(state.value)
        except (KeyError, ValidationError) as exc:
            # Never serve what the queries could not read; the processor skips it too.
            log.error("state log %s offset %d (%r) is not a valid %s, not mirrored: %s",
                      state.message.topic, state.message.offset, state.key, tag, exc)
            continue
        if mirror(table, key, state.value, state.message.offset):
            yield key
