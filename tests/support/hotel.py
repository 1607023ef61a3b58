"""A hotel's worth of rooms, customers and reservations, published, with what queries must say."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.kinds import EventKind, System
from streams.publisher import HotelEventPublisher
from streams.settings import HubSettings
from tests.support.events import sample
from tests.support.http import Answer, money

AVAILABILITY = "room_type_to_availability"
TABLE_OF = {"rooms": "room_to_state", "customers": "customer_to_state",
            "reservations": "reservation_to_state"}


@dataclass(frozen=True)
class Entity:
    """One key: where to ask for it, the table partition it lives in, and what must come back."""

    path: str
    table: str
    partition: int
    expected: dict[str, Any]
    topic: str = ""
    offset: int = -1
    """Where the entity's last event was written."""

    def problem(self, answer: Answer) -> str | None:
        """Why `answer` is not this entity's full current state, or None when it is."""
        if answer.status != 200:
            return f"{self.path}: status {answer.status} {answer.body!r}"
        body = answer.body
        wrong = {
            name: (body.get(name), want) for name, want in self.expected.items()
            if _normal(name, body.get(name)) != want
        }
        return f"{self.path}: {wrong}" if wrong else None


def _normal(name: str, value: Any) -> Any:
    if name in ("base_price", "total_amount"):
        return money(value)
    return value


def new_hotel_id() -> str:
    return f"HTL-{uuid.uuid4().hex[:8].upper()}"


async def publish_hotel(
    publishers: dict[System, HotelEventPublisher], hotel_id: str, *, count: int, first: int = 0
) -> list[Entity]:
    """`count` rooms (each sent twice: v1 then v2), customers and reservations at `hotel_id`,
    numbered from `first`.

    Every entity's values differ, so an answer for the wrong key cannot pass; rooms end
    at version 2, so an answer from a half-restored table (version 1) cannot pass either.
    """
    entities: list[Entity] = []
    for index in range(first, first + count):
        room_id, customer_id, reservation_id = f"R{index}", f"C{index}", f"B{index}"
        number = str(100 + index)
        price = f"{10000 + index}.250"
        for version, status in ((1, "vacant_dirty"), (2, "vacant_clean")):
            system, document = sample(
                EventKind.ROOM, room_id, room_number=number, room_type="TWN", status=status,
                base_price=price, maintenance_notes=None, version=version)
            document.update(hotel_id=hotel_id, action="status_changed")
            room = await publishers[system].publish_document(document)
        entities.append(Entity(f"/rooms/{hotel_id}/{room_id}", "room_to_state", room.partition, {
            "hotel_id": hotel_id, "room_id": room_id, "room_number": number, "room_type": "TWN",
            "status": "vacant_clean", "base_price": money(price), "version": 2,
        }, room.topic, room.offset))

        system, document = sample(EventKind.CUSTOMER, customer_id, total_points=1000 + index,
                                  name=f"Guest {index}")
        document["hotel_id"] = hotel_id
        customer = await publishers[system].publish_document(document)
        entities.append(Entity(
            f"/customers/{hotel_id}/{customer_id}", "customer_to_state", customer.partition,
            {"hotel_id": hotel_id, "customer_id": customer_id, "name": f"Guest {index}",
             "total_points": 1000 + index, "version": 3}, customer.topic, customer.offset))

        amount = f"{20000 + index}.500"
        system, document = sample(EventKind.RESERVATION, reservation_id, customer_id=customer_id,
                                  total_amount=amount, room_number=number)
        document["hotel_id"] = hotel_id
        reservation = await publishers[system].publish_document(document)
        entities.append(Entity(
            f"/reservations/{hotel_id}/{reservation_id}", "reservation_to_state",
            reservation.partition,
            {"hotel_id": hotel_id, "reservation_id": reservation_id, "customer_id": customer_id,
             "status": "confirmed", "checkin_date": "2026-11-23", "checkout_date": "2026-11-25",
             "total_amount": money(amount), "room_number": number},
            reservation.topic, reservation.offset))
    return entities


async def uncommitted(settings: HubSettings, group_ids: list[str], entities: list[Entity]
                      ) -> list[str]:
    """Positions no group of `group_ids` has committed past yet (empty: all committed).

    Several groups because a topic may be read by a processor of its own (stays are,
    under `<app>-stays`). Offsets commit in the same transaction as the state they
    produced, so this (with `changelogs_settled`) is when a restart can restore it all.
    """
    wanted: dict[TopicPartition, int] = {}
    for entity in entities:
        position = TopicPartition(entity.topic, entity.partition)
        wanted[position] = max(wanted.get(position, 0), entity.offset + 1)
    found: dict[TopicPartition, int] = {}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        for group_id in group_ids:
            offsets = await admin.list_consumer_group_offsets(group_id, partitions=list(wanted))
            for position, offset in offsets.items():
                found[position] = max(found.get(position, -1), offset.offset)
    finally:
        await admin.close()
    return [f"{position.topic}[{position.partition}] committed {found.get(position, -1)}, "
            f"wanted {offset}" for position, offset in sorted(wanted.items())
            if found.get(position, -1) < offset]


async def changelogs_settled(settings: HubSettings, app_id: str) -> bool:
    """No open transaction on any table changelog of `app_id`: all its state is committed."""
    topics = [f"{app_id}-{table}-changelog" for table in (*TABLE_OF.values(), AVAILABILITY)]
    positions = [TopicPartition(topic, partition)
                 for topic in topics for partition in range(settings.topic_partitions)]
    ends = []
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                    isolation_level=isolation)
        await consumer.start()
        try:
            ends.append(await consumer.end_offsets(positions))
        finally:
            await consumer.stop()
    return ends[0] == ends[1]


def availability_of(hotel_id: str, count: int) -> list[Entity]:
    """What `publish_hotel(count=...)` leaves: every room TWN, every stay DBL 23-25 Nov."""
    night = "from=2026-11-24&to=2026-11-24"
    return [
        Entity(f"/availability/{hotel_id}/TWN?{night}", AVAILABILITY, -1, {"nights": [
            {"date": "2026-11-24", "in_house": count, "sold": 0, "out_of_order": 0,
             "free": count}]}),
        Entity(f"/availability/{hotel_id}/DBL?{night}", AVAILABILITY, -1, {"nights": [
            {"date": "2026-11-24", "in_house": 0, "sold": count, "out_of_order": 0,
             "free": -count}]}),
    ]


def rooms_of(entities: list[Entity]) -> list[Entity]:
    return [entity for entity in entities if entity.table == "room_to_state"]
