"""A hotel's worth of rooms, customers and reservations, published, with what queries must say.

The hub decides and keeps each hotel in one partition (`streams.wire.partitioning`): every
table key of a hotel lives in partition `hotel_partition(hotel_id, n)`, which is what
`Entity.partition` names, whatever partition its event was published to
(`Entity.source_partition`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.core.kinds import EventKind, System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.partitioning import hotel_partition
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.topics import hotel_events_topic, state_topic
from tests.support.events import sample
from tests.support.http import Answer, money

AVAILABILITY = "room_type_to_availability"
TABLE_OF = {"rooms": "room_to_state", "customers": "customer_to_state",
            "reservations": "reservation_to_state"}
ROOM_TYPE = "TWN"
"""Every room `publish_hotel` sends is of this type, and every booking is for it."""
NIGHT = "2026-11-24"
"""A night every booking of `publish_hotel` holds (23-25 Nov)."""


@dataclass(frozen=True)
class Entity:
    """One key: where to ask for it, the table partition it lives in (its hotel's), and what
    must come back."""

    path: str
    table: str
    partition: int
    """The table partition of the key: `hotel_partition(hotel_id, n)`, the same for every
    key of one hotel; -1 when unknown."""
    expected: dict[str, Any]
    topic: str = ""
    offset: int = -1
    """Where the entity's last event was written (`topic`, `source_partition`, `offset`)."""
    source_partition: int = -1

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


def hotels_covering(partitions: int, *, per_partition: int = 1) -> list[str]:
    """New hotel ids, `per_partition` in each partition, so every worker owns some hotels
    however the partitions are split; ordered by partition."""
    found: dict[int, list[str]] = {partition: [] for partition in range(partitions)}
    while any(len(ids) < per_partition for ids in found.values()):
        hotel_id = new_hotel_id()
        ids = found[hotel_partition(hotel_id, partitions)]
        if len(ids) < per_partition:
            ids.append(hotel_id)
    return [hotel_id for partition in sorted(found) for hotel_id in found[partition]]


@asynccontextmanager
async def publishers_of(settings: HubSettings) -> AsyncIterator[dict[System, HotelEventPublisher]]:
    """A started publisher per system on `settings`' topics (e.g. a test's own, from
    `tests.support.workers.isolated`), stopped on the way out."""
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(SchemaRegistryClient(settings.registry_url))
        yield {system: await stack.enter_async_context(
                   HotelEventPublisher(system=system, registry=registry, settings=settings))
               for system in System}


RoomsApplied = Callable[[list["Entity"]], Awaitable[None]]
"""Waits until the hub serves these rooms (a booking needs its room type in the house)."""


async def publish_hotel(
    publishers: dict[System, HotelEventPublisher], hotel_id: str, *, count: int, first: int = 0,
    rooms_applied: RoomsApplied | None = None,
) -> list[Entity]:
    """`count` rooms (each sent twice: v1 then v2), customers and reservations at `hotel_id`,
    numbered from `first`.

    The rooms go first; then `rooms_applied(rooms)` is awaited (the hub refuses a booking
    for a room type it has no rooms of, and events of different topics may reach the hotel
    in any order), then the customers and bookings, one booking per room, all of
    `ROOM_TYPE`, 23-25 Nov. Every entity's values differ, so an answer for the wrong key
    cannot pass; rooms end at version 2, so an answer from a half-restored table
    (version 1) cannot pass either.
    """
    publisher = next(iter(publishers.values()))
    partition = hotel_partition(hotel_id, publisher.settings.topic_partitions)
    rooms: list[Entity] = []
    for index in range(first, first + count):
        room_id, number, price = f"R{index}", str(100 + index), f"{10000 + index}.250"
        for version, status in ((1, "vacant_dirty"), (2, "vacant_clean")):
            system, document = sample(
                EventKind.ROOM, room_id, room_number=number, room_type=ROOM_TYPE, status=status,
                base_price=price, maintenance_notes=None, version=version)
            document.update(hotel_id=hotel_id, action="status_changed")
            room = await publishers[system].publish_document(document)
        rooms.append(Entity(f"/rooms/{hotel_id}/{room_id}", "room_to_state", partition, {
            "hotel_id": hotel_id, "room_id": room_id, "room_number": number,
            "room_type": ROOM_TYPE, "status": "vacant_clean", "base_price": money(price),
            "version": 2,
        }, room.topic, room.offset, room.partition))
    if rooms_applied is not None:
        await rooms_applied(rooms)

    entities: list[Entity] = []
    for room_entity, index in zip(rooms, range(first, first + count), strict=True):
        customer_id, reservation_id = f"C{index}", f"B{index}"
        number = str(100 + index)
        system, document = sample(EventKind.CUSTOMER, customer_id, total_points=1000 + index,
                                  name=f"Guest {index}")
        document["hotel_id"] = hotel_id
        customer = await publishers[system].publish_document(document)
        customer_entity = Entity(
            f"/customers/{hotel_id}/{customer_id}", "customer_to_state", partition,
            {"hotel_id": hotel_id, "customer_id": customer_id, "name": f"Guest {index}",
             "total_points": 1000 + index, "version": 3},
            customer.topic, customer.offset, customer.partition)

        amount = f"{20000 + index}.500"
        system, document = sample(EventKind.RESERVATION, reservation_id, customer_id=customer_id,
                                  total_amount=amount, room_number=number, room_type=ROOM_TYPE)
        document["hotel_id"] = hotel_id
        reservation = await publishers[system].publish_document(document)
        entities += [room_entity, customer_entity, Entity(
            f"/reservations/{hotel_id}/{reservation_id}", "reservation_to_state", partition,
            {"hotel_id": hotel_id, "reservation_id": reservation_id, "customer_id": customer_id,
             "status": "confirmed", "room_type": ROOM_TYPE, "checkin_date": "2026-11-23",
             "checkout_date": "2026-11-25", "total_amount": money(amount),
             "room_number": number},
            reservation.topic, reservation.offset, reservation.partition)]
    return entities


async def uncommitted(settings: HubSettings, group_ids: list[str], entities: list[Entity]
                      ) -> list[str]:
    """Positions of the entities' events no group of `group_ids` has committed past yet
    (empty: all committed).

    The event topics are read by the hotel processor (group `<app>-hotels`), which commits
    their offsets in the transaction that forwards them to the hotel's partition; with
    `changelogs_settled` this is when a restart restores rather than redoes.
    """
    wanted: dict[TopicPartition, int] = {}
    for entity in entities:
        position = TopicPartition(entity.topic, entity.source_partition)
        wanted[position] = max(wanted.get(position, 0), entity.offset + 1)
    found: dict[TopicPartition, int] = {}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
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
    """No open transaction on the hotel processor's logs (`<app>.hotel-events`,
    `<app>.hotel-state`) or any table changelog of `app_id`: all its state is committed."""
    app = settings.model_copy(update={"app_id": app_id})
    topics = [f"{app_id}-{table}-changelog" for table in (*TABLE_OF.values(), AVAILABILITY)]
    topics += [hotel_events_topic(app), state_topic(app)]
    positions = [TopicPartition(topic, partition)
                 for topic in topics for partition in range(settings.topic_partitions)]
    ends = []
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                    **settings.kafka_auth(),
                                    isolation_level=isolation)
        await consumer.start()
        try:
            ends.append(await consumer.end_offsets(positions))
        finally:
            await consumer.stop()
    return ends[0] == ends[1]


def availability_of(hotel_id: str, count: int, *, partitions: int | None = None
                    ) -> list[Entity]:
    """What `publish_hotel(count=...)` leaves on `NIGHT`: `count` rooms of `ROOM_TYPE`, every
    one sold (no other type is in the house, so no booking of another type is accepted)."""
    night = f"from={NIGHT}&to={NIGHT}"
    partition = -1 if partitions is None else hotel_partition(hotel_id, partitions)
    return [
        Entity(f"/availability/{hotel_id}/{ROOM_TYPE}?{night}", AVAILABILITY, partition, {
            "in_house": count, "nights": [
                {"date": NIGHT, "in_house": count, "sold": count, "out_of_order": 0,
                 "free": 0}]}),
    ]


def rooms_of(entities: list[Entity]) -> list[Entity]:
    return [entity for entity in entities if entity.table == "room_to_state"]
