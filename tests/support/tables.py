"""The hub's committed state for tests that run the app in process.

Read from the hotel processor (what its transactions committed), not from the query
tables, which mirror the same state a moment later: a test that waited for an event's
sink sees exactly what that event decided.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from streams.core.mirrored import state_json
from streams.core.step import AVAILABILITY, CUSTOMER, ROOM, STAY
from streams.runners.hotel_processor import HotelProcessor
from streams.worker.hub import Hub
from tests.support.collector import eventually

M = TypeVar("M", bound=BaseModel)


class Committed:
    """One kind of hotel state, shaped like a table: `.get(key)` gives the stored JSON form."""

    def __init__(self, processor: HotelProcessor, tag: str) -> None:
        self.processor = processor
        self.tag = tag

    def get(self, key: bytes) -> Any:
        state = self.processor.state(self.tag, key)
        return None if state is None else state.model_dump(mode="json")


@dataclass(frozen=True)
class HubTables:
    rooms: Committed
    customers: Committed
    stays: Committed
    availability: Committed
    hotel: Any
    """What `agents.hotel.install` returned: the processor and the tables it feeds."""

    @staticmethod
    def read(table: Committed, key: bytes, model: type[M]) -> M | None:
        raw = table.get(key)
        return None if raw is None else model.model_validate(raw)

    @staticmethod
    async def mirrored(*, timeout_s: float = 30) -> None:
        """Until the running hub's query tables hold every state its processor committed
        (they follow the state log a moment later), so an HTTP answer shows what was decided."""
        assert _running, "no hub is running in this process (the `tables` fixture starts one)"
        hotel = _running[-1].hotel
        table_by_tag = hotel.table_by_tag

        def behind() -> bool:
            for states in list(hotel.processor._states.values()):
                for (tag, key), state in list(states.items()):
                    if tag not in table_by_tag:
                        continue  # not queryable
                    mirrored = state_json(table_by_tag[tag].get(key))
                    if mirrored is None or mirrored != json.loads(state.model_dump_json()):
                        return True
            return False

        await eventually(lambda: not behind(), timeout_s=timeout_s, interval_s=0.05)


def hub_tables(hub: Hub) -> HubTables:
    hotel = hub.installed["hotel"]
    processor = hotel.processor
    tables = HubTables(Committed(processor, ROOM), Committed(processor, CUSTOMER),
                       Committed(processor, STAY), Committed(processor, AVAILABILITY), hotel)
    _running.append(tables)
    return tables


_running: list[HubTables] = []
"""The in-process hub's tables (one per test session)."""
