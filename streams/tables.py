"""The hub's tables: the current picture every system can query.

Keys are the record keys' bytes (`hotel_id:entity_id`), so a key's table
partition is the partition its events arrive on, and the router finds its owner.
Values are the JSON form of the models in `streams.state`; every table is
backed by a changelog topic and restored from it when a worker starts.
"""

from __future__ import annotations

from typing import TypeVar

from faust.types import TableT
from pydantic import BaseModel

from streams.app import app
from streams.settings import get_settings

M = TypeVar("M", bound=BaseModel)

_partitions = get_settings().topic_partitions


def _table(name: str, help: str) -> TableT[bytes, dict[str, object]]:
    # bytes keys travel "raw"; values without a type travel as JSON.
    return app.Table(name, key_type=bytes, partitions=_partitions, help=help)


room_to_state = _table("room_to_state", "hotel_id:room_id -> RoomState")
customer_to_state = _table("customer_to_state", "hotel_id:customer_id -> CustomerState")
reservation_to_state = _table("reservation_to_state",
                              "hotel_id:reservation_id -> ReservationState")
room_type_to_availability = _table("room_type_to_availability",
                                   "hotel_id:room_type -> AvailabilityState")


def read(table: TableT[bytes, dict[str, object]], key: bytes, model: type[M]) -> M | None:
    raw = table.get(key)
    return None if raw is None else model.model_validate(raw)


def write(table: TableT[bytes, dict[str, object]], key: bytes, state: BaseModel) -> None:
    table[key] = state.model_dump(mode="json")
