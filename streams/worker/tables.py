"""The hub's tables: the current picture every system can query.

Keys are `hotel_id:entity_id` bytes; every key of a hotel lives in the partition its
hotel hashes to, as in the hotel processor's state log that these tables mirror.
Values are mirrored state (`streams.core.mirrored`); every table is backed by a changelog
topic and restored from it when a worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TableT

Table = TableT[bytes, bytes]


@dataclass(frozen=True)
class Tables:
    rooms: Table
    customers: Table
    stays: Table
    availability: Table

    def all(self) -> tuple[Table, ...]:
        return (self.rooms, self.customers, self.stays, self.availability)


def create_tables(app: faust.App, partitions: int) -> Tables:
    def table(name: str, help: str) -> Table:
        # Keys and values are bytes (`streams.core.mirrored`), which Faust passes "raw":
        # nothing to (de)serialise.
        return app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions,
                         help=help)

    return Tables(
        rooms=table("room_to_state", "hotel_id:room_id -> RoomState"),
        customers=table("customer_to_state", "hotel_id:customer_id -> CustomerState"),
        stays=table("reservation_to_state", "hotel_id:reservation_id -> ReservationState"),
        availability=table("room_type_to_availability", "hotel_id:room_type -> AvailabilityState"),
    )
