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


def hub_tables() -> HubTables:
    from streams import tables

    return HubTables(tables.room_to_state, tables.customer_to_state,
                     tables.reservation_to_state, tables.room_type_to_availability)
