"""Any Kafka client can publish (issue 6): the hub does not depend on a producer's partitioner.

A confluent-kafka Producer with its default partitioner (librdkafka's consistent_random:
CRC32 of the key) publishes bookings, encoded with the hub's codec and keyed
`hotel_id:reservation_id`, for several hotels; the hub's own publisher (murmur2, as Kafka's
Java clients) sends their check-ins, so a booking and its check-in sit in different
partitions for most stays. With two worker processes every stay must end checked in, its
room occupied, and be answered right by BOTH workers (one of them forwarding to the owner);
again after one worker is restarted. Nothing is dead-lettered and nothing refused. The workers,
both producers and the reads use topics of the test's own (`tests.support.workers.isolated`).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaError, Message, Producer

from streams.core.documents import build_event
from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, REFUSAL_TOPIC, EventKind, System
from streams.core.models import ReservationEvent, record_key
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.cloudevents import headers_for
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.partitioning import hotel_partition
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.signing import Signer
from tests.support.events import sample
from tests.support.hotel import new_hotel_id
from tests.support.http import Answer, get, money
from tests.support.outside import about_hotels, describe, health, read_topic, until
from tests.support.workers import (
    WorkerProcess,
    isolated,
    stopped_at_exit,
    worker_group,
)

pytestmark = pytest.mark.integration

HOTELS = 3
STAYS_PER_HOTEL = 3
MISPLACED_PER_HOTEL = 2
"""Stays whose booking (CRC32) and check-in (murmur2) are in different partitions."""
CHECKIN_TIME = "2026-11-23T15:02:00+09:00"
NIGHT = "from=2026-11-24&to=2026-11-24"
FAST_GROUP_ENV = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}
"""A member that left without a goodbye is out of the group in 10 s, not Faust's 60 s."""


@dataclass(frozen=True)
class Stay:
    hotel_id: str
    reservation_id: str
    room_id: str
    room_number: str
    customer_id: str
    amount: str

    @property
    def key(self) -> bytes:
        return f"{self.hotel_id}:{self.reservation_id}".encode()


@pytest.fixture
def own_settings(hub_settings: HubSettings) -> HubSettings:
    """Topics of this test's own, for its workers and everything it publishes or reads."""
    return isolated(hub_settings, "foreign")


@pytest.fixture
def two_workers(own_settings: HubSettings, tmp_path: Path) -> Iterator[tuple[WorkerProcess, ...]]:
    workers = worker_group(own_settings, "foreign", tmp_path, count=2,
                           extra_env=FAST_GROUP_ENV)
    with stopped_at_exit(*workers):
        for worker in workers:
            worker.start()
        yield tuple(workers)


def crc32_partition(key: bytes, partitions: int) -> int:
    """Where librdkafka's default partitioner (consistent_random) puts a non-empty key."""
    return zlib.crc32(key) % partitions


def murmur2_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def hotels_apart(count: int, partitions: int) -> list[str]:
    """Hotel ids in `count` different hub partitions, so both workers own some of them."""
    hotels: dict[int, str] = {}
    while len(hotels) < min(count, partitions):
        hotel_id = new_hotel_id()
        hotels.setdefault(hotel_partition(hotel_id, partitions), hotel_id)
    return list(hotels.values())


def stays_of(hotel_id: str, partitions: int) -> list[Stay]:
    """MISPLACED_PER_HOTEL stays whose CRC32 and murmur2 partitions differ, the rest agree."""
    stays: list[Stay] = []
    misplaced, index = 0, 0
    while len(stays) < STAYS_PER_HOTEL:
        reservation_id = f"S{index}"
        index += 1
        key = f"{hotel_id}:{reservation_id}".encode()
        differs = crc32_partition(key, partitions) != murmur2_partition(key, partitions)
        if differs != (misplaced < MISPLACED_PER_HOTEL):
            continue
        misplaced += differs
        number = len(stays)
        stays.append(Stay(hotel_id, reservation_id, f"RM-{number}", str(501 + number),
                          f"C-{reservation_id}", f"{41000 + number}.750"))
    return stays


async def serving_apart(session: aiohttp.ClientSession, workers: tuple[WorkerProcess, ...]
                        ) -> list[Answer | None]:
    """Both workers' /health, for `split`."""
    return [await health(session, worker) for worker in workers]


def split(healths: list[Answer | None], partitions: int) -> bool:
    """Both serve, and each owns some of the reservation table's partitions, none twice."""
    if any(found is None or found.status != 200 for found in healths):
        return False
    owned = [set(found.body["active_partitions"]["reservation_to_state"])
             for found in healths if found is not None]
    return all(owned) and set.union(*owned) == set(range(partitions)) and \
        sum(map(len, owned)) == partitions


def stay_problem(stay: Stay, answer: Answer) -> str | None:
    path = f"/reservations/{stay.hotel_id}/{stay.reservation_id}"
    if answer.status != 200:
        return f"{path}: {answer.status} {answer.body!r}"
    body: dict[str, Any] = answer.body
    want = {"status": "checked_in", "room_id": stay.room_id, "room_number": stay.room_number,
            "customer_id": stay.customer_id, "room_type": "DBL", "checkin_date": "2026-11-23",
            "checkout_date": "2026-11-25", "total_amount": money(stay.amount)}
    got = {name: money(body.get(name)) if name == "total_amount" else body.get(name)
           for name in want}
    return None if got == want else f"{path}: {got} != {want}"


def room_problem(stay: Stay, answer: Answer) -> str | None:
    path = f"/rooms/{stay.hotel_id}/{stay.room_id}"
    if answer.status != 200:
        return f"{path}: {answer.status} {answer.body!r}"
    got = {name: answer.body.get(name) for name in ("status", "current_reservation_id")}
    want = {"status": "occupied_clean", "current_reservation_id": stay.reservation_id}
    return None if got == want else f"{path}: {got} != {want}"


Served = list[tuple[str, str | None]]
"""(worker asked, worker whose table answered: its X-Hotelhub-Served-By) per right answer."""


async def problems_from(session: aiohttp.ClientSession, workers: tuple[WorkerProcess, ...],
                        stays: list[Stay], served: Served) -> list[str]:
    """What any worker answers wrong for any stay, its room or its hotel's nights."""
    found: list[str] = []
    served.clear()
    nights = {stay.hotel_id: f"/availability/{stay.hotel_id}/DBL?{NIGHT}" for stay in stays}
    for worker in workers:
        asked = [(f"/reservations/{stay.hotel_id}/{stay.reservation_id}",
                  lambda answer, stay=stay: stay_problem(stay, answer)) for stay in stays]
        asked += [(f"/rooms/{stay.hotel_id}/{stay.room_id}",
                   lambda answer, stay=stay: room_problem(stay, answer)) for stay in stays]
        asked += [(path, lambda answer, path=path: nights_problem(path, answer))
                  for path in nights.values()]
        for path, check in asked:
            answer = await get(session, worker.url + path)
            problem = check(answer)
            if problem:
                found.append(f"{worker.name} {problem}")
            else:
                served.append((worker.url, answer.served_by))
    return found


def nights_problem(path: str, answer: Answer) -> str | None:
    """Each hotel has STAYS_PER_HOTEL DBL rooms and sold each of them once for the night."""
    want = [{"date": "2026-11-24", "in_house": STAYS_PER_HOTEL, "sold": STAYS_PER_HOTEL,
             "out_of_order": 0, "free": 0}]
    if answer.status != 200 or answer.body.get("nights") != want:
        return f"{path}: {answer.status} {answer.body!r} != {want}"
    return None


async def test_stays_from_any_partitioner_are_right_on_both_workers(
    own_settings: HubSettings, two_workers: tuple[WorkerProcess, ...],
) -> None:
    started = time.monotonic()
    partitions = own_settings.topic_partitions
    hotels = hotels_apart(HOTELS, partitions)
    stays = [stay for hotel_id in hotels for stay in stays_of(hotel_id, partitions)]
    reservation_topic = own_settings.topic(POLICIES[EventKind.RESERVATION].topic)

    async with aiohttp.ClientSession() as session, \
            SchemaRegistryClient(own_settings.registry_url) as registry:
        await until(two_workers, lambda: serving_apart(session, two_workers),
                    lambda found: split(found, partitions),
                    "two serving workers sharing the partitions", timeout_s=120)
        serving_s = time.monotonic() - started

        async with HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                                       settings=own_settings) as pms:
            for stay in stays:
                _, document = sample(EventKind.ROOM, stay.room_id, room_number=stay.room_number,
                                     room_type="DBL", status="vacant_clean",
                                     maintenance_notes=None, version=1)
                await pms.publish_document({**document, "action": "status_changed",
                                            "hotel_id": stay.hotel_id})
            first = two_workers[0]
            for hotel_id in hotels:
                await until(two_workers, lambda hotel_id=hotel_id: get(
                                session, f"{first.url}/rooms/{hotel_id}?type=DBL"),
                            lambda found: found.status == 200
                            and found.body.get("count") == STAYS_PER_HOTEL,
                            f"the rooms of {hotel_id}", timeout_s=60)

            # Bookings from a librdkafka client with its default partitioner, as hotel-saas
            # (its credential, its signature)...
            codec = ConfluentAvroCodec(registry)
            await codec.register("reservation")
            saas = own_settings.as_identity(System.HOTEL_SAAS.value)
            booked = await asyncio.to_thread(
                produce_with_librdkafka, saas, reservation_topic,
                [signed(saas, POLICIES[EventKind.RESERVATION].topic, record_key(event),
                        codec.encode(event), headers_for(event)) for event in map(booking, stays)])
            # ...and their check-ins from the hub's publisher (murmur2), right after.
            checked_in = {}
            for stay in stays:
                _, document = sample(
                    EventKind.CHECKIN_CHECKOUT, stay.reservation_id, customer_id=stay.customer_id,
                    room_id=stay.room_id, room_number=stay.room_number,
                    actual_checkin_time=CHECKIN_TIME, actual_checkout_time=None,
                    additional_charges=None, payment_status="pending")
                published = await pms.publish_document(
                    {**document, "action": "checked_in", "hotel_id": stay.hotel_id})
                checked_in[stay.key] = published.partition

        predicted = {stay.key: crc32_partition(stay.key, partitions) for stay in stays}
        assert booked == predicted, "confluent-kafka did not place keys by CRC32"
        assert checked_in == {stay.key: murmur2_partition(stay.key, partitions)
                              for stay in stays}
        apart = [stay.key for stay in stays if booked[stay.key] != checked_in[stay.key]]
        assert len(apart) == HOTELS * MISPLACED_PER_HOTEL, (booked, checked_in)

        served: Served = []
        await until(two_workers, lambda: problems_from(session, two_workers, stays, served),
                    lambda found: not found, "every stay checked in, from both workers",
                    timeout_s=90)
        assert {by for _, by in served} == {worker.url for worker in two_workers}, served
        assert any(asked != by for asked, by in served), "no answer was forwarded"
        applied_s = time.monotonic() - started

        # One worker restarts; the other takes its partitions, then gives some back.
        restarted = two_workers[1]
        assert restarted.stop() == 0, restarted.log_tail()
        restarted.start()
        await until(two_workers, lambda: serving_apart(session, two_workers),
                    lambda found: split(found, partitions),
                    "two serving workers after the restart", timeout_s=120)
        await until(two_workers, lambda: problems_from(session, two_workers, stays, served),
                    lambda found: not found, "every stay right from both after the restart",
                    timeout_s=60)
        # Both tables answer, the restarted worker's (restored from the changelogs) too.
        assert {by for _, by in served} == {worker.url for worker in two_workers}, served
        assert any(asked != by for asked, by in served), "no answer was forwarded"

    dead = about_hotels(await read_topic(own_settings, own_settings.topic(DEADLETTER_TOPIC)),
                        hotels)
    assert not dead, [describe(record) for record in dead]
    refused = about_hotels(await read_topic(own_settings, own_settings.topic(REFUSAL_TOPIC)),
                           hotels)
    assert not refused, [describe(record) for record in refused]
    print(f"{len(stays)} stays ({len(apart)} with booking and check-in in different partitions);"
          f" workers serving after {serving_s:.1f} s, stays applied at {applied_s:.1f} s, "
          f"test {time.monotonic() - started:.1f} s")


def booking(stay: Stay) -> ReservationEvent:
    _, document = sample(EventKind.RESERVATION, stay.reservation_id, customer_id=stay.customer_id,
                         room_number=None, total_amount=stay.amount)
    event = build_event({**document, "action": "created", "hotel_id": stay.hotel_id},
                        publisher=System.HOTEL_SAAS, default_hotel_id=stay.hotel_id)
    assert isinstance(event, ReservationEvent)
    return event


def signed(settings: HubSettings, topic: str, key: bytes, value: bytes,
           headers: list[tuple[str, bytes]]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The record as its producer signs it (`streams.wire.signing`: `topic` without the
    deployment's prefix; unsigned with security off)."""
    signer = Signer.of(settings)
    return key, value, headers if signer is None else signer.sign(topic, key, value, headers)


def produce_with_librdkafka(settings: HubSettings, topic: str,
                            records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
                            ) -> dict[bytes, int]:
    """Produce with confluent-kafka's defaults (no `partitioner` set); key -> partition."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all",
                         **settings.confluent_auth(),
                         "enable.idempotence": True, "client.id": "foreign-partitioner-test"})
    placed: dict[bytes, int] = {}
    failed: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failed.append(f"{message.key()!r}: {error}")
        else:
            placed[message.key()] = message.partition()

    for key, value, headers in records:
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivered)
    left = producer.flush(30)
    assert left == 0 and not failed, f"{left} undelivered, failed: {failed}"
    return placed
