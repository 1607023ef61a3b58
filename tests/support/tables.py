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

from tests.support.collector import eventually

M = TypeVar("M", bound=BaseModel)


class Committed:
    """One kind of hotel state, shaped like a table: `.get(key)` gives the stored JSON form."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def get(self, key: bytes) -> Any:
        from agents.hotel import track_hotels

        state = track_hotels.state(self.tag, key)
        return None if state is None else state.model_dump(mode="json")


@dataclass(frozen=True)
class HubTables:
    rooms: Committed
    customers: Committed
    stays: Committed
    availability: Committed

    @staticmethod
    def read(table: Committed, key: bytes, model: type[M]) -> M | None:
        raw = table.get(key)
        return None if raw is None else model.model_validate(raw)

    @staticmethod
    async def mirrored(*, timeout_s: float = 30) -> None:
        """Until the query tables hold every state the processor committed (they follow
        the state log a moment later), so an HTTP answer shows what was decided."""
        from agents.hotel import TABLE_BY_TAG, track_hotels

        def behind() -> bool:
            for states in list(track_hotels._states.values()):
                for (tag, key), state in list(states.items()):
                    if tag not in TABLE_BY_TAG:
                        continue  # not queryable
                    mirrored = TABLE_BY_TAG[tag].get(key)
                    if mirrored is None or mirrored["state"] != json.loads(
                            state.model_dump_json()):
                        return True
            return False

        await eventually(lambda: not behind(), timeout_s=timeout_s, interval_s=0.05)


def hub_tables() -> HubTables:
    from streams.core.step import AVAILABILITY, CUSTOMER, ROOM, STAY

    return HubTables(Committed(ROOM), Committed(CUSTOMER), Committed(STAY),
                     Committed(AVAILABILITY))
