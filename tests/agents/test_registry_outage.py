"""A registry that is away is not a poison record (issue 6): the records wait, then apply.

One worker process reads its schemas from a registry process of this test's own (own
port, home and topic on the session's Kafka). Bookings framed with a schema id the
worker has never seen (our reservation contract plus an optional field, registered under
a subject of the test's own) are published by a plain aiokafka producer while that
registry is stopped: the worker must not dead-letter them, must say on /health why it
waits, and must apply every one of them once the registry answers again.

Run twice: with every booking in one partition of `hotel.reservation`, and spread over
every partition (waiting on one partition must not skip what was fetched for the others).
The worker, the registry's topic, the producers and the reads use topics of the test's own
(`tests.support.workers.isolated`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from schemas import schema_text
from streams.core.documents import build_event
from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, REFUSAL_TOPIC, EventKind, System
from streams.core.models import ReservationEvent, record_key
from streams.core.step import STAY
from streams.runners.effects import split_state_key
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.cloudevents import headers_for
from streams.wire.codec import parse_schema
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.signing import Signer
from streams.wire.topics import hotel_events_topic, state_topic
from tests.support.events import sample
from tests.support.hotel import new_hotel_id
from tests.support.http import Answer, get, money
from tests.support.outside import (
    OwnRegistry,
    about_hotels,
    committed_offsets,
    confluent_frame,
    describe,
    health,
    read_topic,
    until,
)
from tests.support.workers import (
    WorkerProcess,
    free_port,
    isolated,
    stopped_at_exit,
    worker_app_id,
    worker_env,
)

pytestmark = pytest.mark.integration

BOOKINGS = 8
NIGHT = "from=2026-11-24&to=2026-11-24"
OUTAGE_HOLD_S = 8.0
"""How long the outage lasts after the worker first says it waits: several retries."""
EXTRA_FIELD = "channel_detail"


@pytest.fixture
def own_settings(hub_settings: HubSettings) -> HubSettings:
    """Topics of this test's own, for its worker, its registry and everything it sends or reads."""
    return isolated(hub_settings, "outage")


@pytest.fixture
def own_registry(own_settings: HubSettings, tmp_path: Path) -> Iterator[OwnRegistry]:
    registry = OwnRegistry.create(
        own_settings, home=tmp_path / "registry-home", port=free_port(),
        topic=f"{own_settings.topic_prefix}outage-{uuid.uuid4().hex[:8]}._schemas")
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def worker(own_settings: HubSettings, own_registry: OwnRegistry, tmp_path: Path
           ) -> Iterator[WorkerProcess]:
    port = free_port()
    env = worker_env(own_settings, app_id=worker_app_id(own_settings, "outage"),
                     web_port=port, data_dir=tmp_path / "worker-data")
    env["SCHEMA_REGISTRY_URL"] = own_registry.url
    with stopped_at_exit(WorkerProcess("outage", env, port, tmp_path)) as (started,):
        started.start()
        yield started


def evolved_reservation_schema() -> str:
    """Our reservation contract plus an optional field with a default: BACKWARD compatible."""
    schema = json.loads(schema_text("reservation"))
    schema["fields"].append({"name": EXTRA_FIELD, "type": ["null", "string"], "default": None,
                             "doc": "A field the hub's contract does not know."})
    return json.dumps(schema)


def booking_ids(hotel_id: str, count: int, partitions: int, *, spread: bool) -> list[str]:
    """Reservation ids whose records (murmur2 of `hotel:id`, as aiokafka places them) cover
    every partition (`spread`), or all land in one partition."""
    ids: list[str] = []
    seen: list[int] = []
    index = 0
    while len(ids) < count:
        candidate = f"B{index}"
        index += 1
        partition = (murmur2(f"{hotel_id}:{candidate}".encode()) & 0x7FFFFFFF) % partitions
        if spread:
            wanted = partition not in seen or len(set(seen)) >= min(partitions, count)
        else:
            wanted = not seen or partition == seen[0]
        if wanted:
            seen.append(partition)
            ids.append(candidate)
    return ids


@pytest.mark.parametrize("spread", [
    pytest.param(False, id="one-partition"),
    pytest.param(True, id="every-partition"),
])
async def test_bookings_wait_for_the_registry_and_apply_when_it_returns(
    own_settings: HubSettings, own_registry: OwnRegistry, worker: WorkerProcess, spread: bool,
) -> None:
    started = time.monotonic()
    hotel_id = new_hotel_id()
    partitions = own_settings.topic_partitions
    app_settings = own_settings.model_copy(update={"app_id": worker.env["HOTELHUB_APP_ID"]})
    dead_topic = own_settings.topic(DEADLETTER_TOPIC)
    reservation_topic = own_settings.topic(POLICIES[EventKind.RESERVATION].topic)

    async with aiohttp.ClientSession() as http, \
            SchemaRegistryClient(own_registry.url) as registry:
        async def ask(path: str) -> Answer:
            return await get(http, worker.url + path)

        await until([worker], lambda: health(http, worker),
                    lambda found: found is not None and found.status == 200,
                    "a serving worker", timeout_s=120)

        # The house: one DBL room per booking, applied before any booking is sent.
        async with HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                                       settings=own_settings) as pms:
            for index in range(BOOKINGS):
                _, document = sample(EventKind.ROOM, f"RM-{index}", room_number=str(301 + index),
                                     room_type="DBL", status="vacant_clean",
                                     maintenance_notes=None, version=1)
                await pms.publish_document({**document, "action": "status_changed",
                                            "hotel_id": hotel_id})
        await until([worker], lambda: ask(f"/rooms/{hotel_id}?type=DBL"),
                    lambda found: found.status == 200 and found.body.get("count") == BOOKINGS,
                    f"{BOOKINGS} DBL rooms at {hotel_id}", timeout_s=60)
        known_ids = set((await registry_ids(registry)).values())

        evolved_text = evolved_reservation_schema()
        evolved_id = await registry.register(
            f"{own_settings.topic_prefix}outage-evolved-reservation-value", evolved_text)
        assert evolved_id not in known_ids, (evolved_id, known_ids)
        evolved = parse_schema(evolved_text)

        # The registry goes away; bookings framed with the new id arrive meanwhile.
        own_registry.stop()
        assert own_registry.pid() is None and not own_registry.answers()
        outage_began = time.monotonic()
        ids = booking_ids(hotel_id, BOOKINGS, partitions, spread=spread)
        bookings = [booking(hotel_id, reservation_id, index)
                    for index, reservation_id in enumerate(ids)]
        saas = own_settings.as_identity(System.HOTEL_SAAS.value)  # who books, signs
        signer = Signer.of(saas)
        records = [(record_key(event), headers_for(event), confluent_frame(
                        evolved_id, evolved, {**event.model_dump(mode="python"),
                                              EXTRA_FIELD: f"booked through channel {index}"}))
                   for index, event in enumerate(bookings)]
        producer = AIOKafkaProducer(bootstrap_servers=saas.bootstrap_servers,
                                    **saas.kafka_auth(), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sent = await asyncio.gather(*[
                await producer.send(
                    reservation_topic, key=key, value=value,
                    headers=headers if signer is None
                    else signer.sign(POLICIES[EventKind.RESERVATION].topic, key, value,
                                     headers))
                for key, headers, value in records])
        finally:
            await producer.stop()
        assert len({metadata.partition for metadata in sent}) == (
            min(partitions, BOOKINGS) if spread else 1), sent

        waiting = await until(
            [worker], lambda: health(http, worker),
            lambda found: found is not None and found.status == 503
            and "waiting for the schema registry" in str(found.body.get("detail", "")),
            "/health 503 waiting for the schema registry", timeout_s=60,
            extra=own_registry.log_tail)
        assert waiting.headers.get("Retry-After"), waiting.headers

        # The outage lasts: every look says the same, nothing is applied or dead-lettered.
        flaps: list[str] = []
        hold_until = time.monotonic() + OUTAGE_HOLD_S
        while time.monotonic() < hold_until:
            found = await health(http, worker)
            if found is None or found.status != 503 or \
                    "waiting for the schema registry" not in str(found.body.get("detail", "")):
                flaps.append(repr(found))
            for event in bookings:
                answer = await ask(f"/reservations/{hotel_id}/{event.data.reservation_id}")
                assert answer.status != 200, (
                    f"{event.data.reservation_id} answered while the registry is away: "
                    f"{answer.body}")
            await asyncio.sleep(1.0)
        assert not flaps, f"/health stopped saying why records wait: {flaps[:3]}"
        stays = [key for key in stay_keys(await read_topic(app_settings,
                                                           state_topic(app_settings)))
                 if key.startswith(f"{hotel_id}:".encode())]
        assert not stays, f"stays applied while the registry was away: {stays}"
        forwarded = about_hotels(await read_topic(app_settings, hotel_events_topic(app_settings)),
                                 [hotel_id])
        # The forwarder routes by the `ce_hotelid` header without decoding, so bookings may
        # reach their hotel's partition meanwhile; there they wait, and a rewind of the
        # deciding side never forwards one twice.
        booking_keys = {record_key(event) for event in bookings}
        early = [record.key for record in forwarded if record.key in booking_keys]
        assert len(early) == len(set(early)), f"a booking forwarded twice: {early}"
        dead = about_hotels(await read_topic(own_settings, dead_topic), [hotel_id])
        assert not dead, [describe(record) for record in dead]
        waits = worker.logs[-1].read_text(errors="replace").count("records wait")
        assert waits >= 2, f"the worker retried {waits} time(s)\n{worker.log_tail()}"

        # The registry returns (same port, same topic): every booking is applied.
        own_registry.start()
        returned = time.monotonic()
        expected = {f"/reservations/{hotel_id}/{event.data.reservation_id}": event
                    for event in bookings}

        async def wrong() -> list[str]:
            return [problem for path, event in expected.items()
                    if (problem := booking_problem(path, await ask(path), event))]

        group = app_settings.processor_group
        topic_partitions = [TopicPartition(reservation_topic, p) for p in range(partitions)]

        async def where() -> str:
            committed = await committed_offsets(own_settings, group, topic_partitions)
            placed = ", ".join(f"{event.data.reservation_id}@{metadata.partition}:"
                               f"{metadata.offset}" for event, metadata in zip(
                                   bookings, sent, strict=True))
            return (f"bookings sent (id@partition:offset): {placed}\n{group} committed on "
                    f"{reservation_topic}: " + ", ".join(
                        f"[{tp.partition}] {offset}" for tp, offset in committed.items()))

        try:
            await until([worker], wrong, lambda problems: not problems,
                        "every booking applied after the registry returned", timeout_s=40,
                        extra=own_registry.log_tail)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await where()}") from None
        applied_after_s = time.monotonic() - returned
        await until([worker], lambda: health(http, worker),
                    lambda found: found is not None and found.status == 200,
                    "/health 200 again", timeout_s=30)
        nights = await ask(f"/availability/{hotel_id}/DBL?{NIGHT}")
        assert nights.status == 200, nights.body
        assert nights.body["nights"] == [{"date": "2026-11-24", "in_house": BOOKINGS,
                                          "sold": BOOKINGS, "out_of_order": 0, "free": 0}]

        dead = about_hotels(await read_topic(own_settings, dead_topic), [hotel_id])
        assert not dead, [describe(record) for record in dead]
        refused = about_hotels(await read_topic(own_settings, own_settings.topic(REFUSAL_TOPIC)),
                               [hotel_id])
        assert not refused, [describe(record) for record in refused]
    print(f"outage {returned - outage_began:.1f} s; bookings applied {applied_after_s:.1f} s "
          f"after the registry returned; test {time.monotonic() - started:.1f} s")


async def registry_ids(registry: SchemaRegistryClient) -> dict[str, int]:
    """Ids of every subject's latest version in the test's registry (what the worker knows)."""
    found = {}
    for subject in await registry.subjects():
        latest = await registry.latest(subject)
        if latest is not None:
            found[subject] = latest.id
    return found


def booking(hotel_id: str, reservation_id: str, index: int) -> ReservationEvent:
    _, document = sample(EventKind.RESERVATION, reservation_id, customer_id=f"C{index}",
                         room_number=None, total_amount=f"{30000 + index}.125")
    event = build_event({**document, "action": "created", "hotel_id": hotel_id},
                        publisher=System.HOTEL_SAAS, default_hotel_id=hotel_id)
    assert isinstance(event, ReservationEvent)
    return event


def booking_problem(path: str, answer: Answer, event: ReservationEvent) -> str | None:
    if answer.status != 200:
        return f"{path}: {answer.status} {answer.body!r}"
    body: dict[str, Any] = answer.body
    want = {"status": "confirmed", "customer_id": event.data.customer_id, "room_type": "DBL",
            "checkin_date": "2026-11-23", "checkout_date": "2026-11-25",
            "total_amount": event.data.total_amount}
    got = {name: money(body.get(name)) if name == "total_amount" else body.get(name)
           for name in want}
    return None if got == want else f"{path}: {got} != {want}"


def stay_keys(records: list[Any]) -> list[bytes]:
    keys = []
    for record in records:
        if record.key is not None:
            tag, key = split_state_key(record.key)
            if tag == STAY:
                keys.append(key)
    return keys
