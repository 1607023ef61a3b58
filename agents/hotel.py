"""Hotels: stays, rooms, customers and inventory decided in transactions, mirrored for queries.

The rules run in `streams.runners.hotel_processor` (exactly-once, one transactional
producer per partition, every hotel in the partition its id hashes to); this agent
copies its committed state log into the queryable tables. Last value wins, so a
redelivery changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from faust.types import AgentT, StreamT
from mode import Service
from pydantic import ValidationError

from streams.core.mirrored import mirror
from streams.core.step import AVAILABILITY, CUSTOMER, MODELS, ROOM, STAY
from streams.ops import health
from streams.runners.effects import split_state_key
from streams.runners.hotel_processor import HotelProcessor
from streams.worker.hub import Hub
from streams.worker.tables import Table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HotelAgents:
    processor: HotelProcessor
    mirror: AgentT[Any]
    table_by_tag: Mapping[str, Table]


def install(hub: Hub) -> HotelAgents:
    processor = HotelProcessor(hub.settings, hub.codec, hub.rules)
    processor.on_failure(health.fatal)
    hub.event_agents.append(processor)

    def processing_problem() -> str | None:
        if processor.failure is not None:
            return f"hotel processing stopped: {processor.failure!r}"
        return processor.waiting

    health.register(processing_problem)

    tables = hub.tables
    table_by_tag: dict[str, Table] = {
        STAY: tables.stays, ROOM: tables.rooms, CUSTOMER: tables.customers,
        AVAILABILITY: tables.availability,
    }

    class HotelProcessing(Service):
        """Runs the hotel processor for as long as the worker runs."""

        async def on_start(self) -> None:
            await processor.start()

        async def on_stop(self) -> None:
            await processor.stop()

    hub.app.service(HotelProcessing)

    @hub.app.agent(hub.channels.hotel_state, name="agents.hotel.mirror_hotel_state")
    async def mirror_hotel_state(states: StreamT[bytes]) -> AsyncIterator[bytes]:
        async for state in states.events():
            if not isinstance(state.key, bytes) or not isinstance(state.value, bytes):
                continue  # a tombstone, or not written by a hub
            tag, key = split_state_key(state.key)
            table = table_by_tag.get(tag)
            if table is None:
                continue  # the processor's own bookkeeping (events waiting for their room)
            try:
                MODELS[tag].model_validate_json(state.value)
            except (KeyError, ValidationError) as exc:
                # Never serve what the queries could not read; the processor skips it too.
                log.error("state log %s offset %d (%r) is not a valid %s, not mirrored: %s",
                          state.message.topic, state.message.offset, state.key, tag, exc)
                continue
            if mirror(table, key, state.value, state.message.offset):
                yield key

    return HotelAgents(processor, mirror_hotel_state, table_by_tag)
