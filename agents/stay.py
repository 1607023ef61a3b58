"""Stays: reservations and check-in/out, processed in Kafka transactions, mirrored for queries.

The rules run in `streams.stay_processor` (exactly-once, one transactional producer
per partition); this agent copies its committed state log into the queryable
`reservation_to_state` table. Last value wins, so a redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from faust.types import StreamT
from mode import Service

from streams.app import app
from streams.channels import stays_log_topic
from streams.runtime import rule_settings, shared_codec
from streams.settings import get_settings
from streams.stay_processor import StayProcessor
from streams.tables import reservation_to_state

track_stays = StayProcessor(get_settings(), shared_codec(), rule_settings())


@app.service
class StayProcessing(Service):
    """Runs the stay processor for as long as the worker runs."""

    async def on_start(self) -> None:
        await track_stays.start()

    async def on_stop(self) -> None:
        await track_stays.stop()


@app.agent(stays_log_topic)
async def mirror_stays(states: StreamT[Any]) -> AsyncIterator[bytes]:
    async for event in states.events():
        key = event.key
        if isinstance(key, bytes):
            reservation_to_state[key] = event.value
            yield key
