"""The hub's tables for tests that run the app in process, imported only once it is set up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class HubTables:
    rooms: Any
    customers: Any
    stays: Any
    availability: Any

    @staticmethod
    def read(table: Any, key: bytes, model: type[M]) -> M | None:
        raw = table.get(key)
        return None if raw is None else model.model_validate(raw)


class CommittedStays:
    """Stays as the stay processor committed them (the queryable table copies these a moment
    later), shaped like a table: `.get(key)` gives the stored JSON form or None."""

    def get(self, key: bytes) -> Any:
        from agents.stay import track_stays

        state = track_stays.state(key)
        return None if state is None else state.model_dump(mode="json")


def hub_tables() -> HubTables:
    from streams import tables

    return HubTables(tables.room_to_state, tables.customer_to_state, CommittedStays(),
                     tables.room_type_to_availability)
