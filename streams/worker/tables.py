"""The hub's tables: the current picture every system can query.

Keys are `hotel_id:entity_id` bytes; every key of a hotel lives in the partition its
hotel hashes to, as in the hotel processor's state log that these tables mirror.
Values are mirrored state (`streams.core.mirrored`); every table is backed by a changelog
topic and restored from it when a worker starts.
"""

from __future__ import annotations

from faust.types import TableT

from streams.settings import get_settings
from streams.worker.app import app

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
