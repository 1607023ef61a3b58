"""The last room is sold once, however many systems race for it through however many workers.

Two `hotelhub worker` processes share the partitions. A hotel has exactly one room of a
type; hotel-saas and hotel-member publish many bookings of it for the same night at once.
The bookings land on different partitions of hotel.reservation, so both workers' hotel
processors forward some of them; every one is decided in the hotel's one partition
(`streams.runners.hotel_processor`), so exactly one is applied and every other one is refused
as `overbooked` on hotel.refusals, naming the night. Availability over HTTP, asked of
both workers while the race runs and after it, never shows a negative free count.

The workers run with an overbooking allowance of one room for a second hotel
(`HOTELHUB_OVERBOOKING`): there exactly two bookings are applied and free ends at -1.

The workers, publishers and readers use topics of this module's own
(`tests.support.workers.isolated`): no other app of the session decides these hotels.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import TopicPartition

from streams.core.kinds import DEADLETTER_TOPIC, REFUSAL_TOPIC, EventKind, System
from streams.core.models import HotelEvent, Refusal
from streams.core.step import STAY
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.eos import (
    group_assignment,
    hotel_state_records,
    last_states,
    of_hotel,
    read_topic,
)
from tests.support.events import sample
from tests.support.hotel import new_hotel_id, publishers_of
from tests.support.http import Answer, get, get_or_none, poll
from tests.support.workers import (
    WorkerProcess,
    isolated,
    stopped_at_exit,
    worker_group,
)

pytestmark = pytest.mark.integration

ROOM_TYPE = "STE"
NIGHT = date(2026, 12, 24)
RACERS = 20
"""Bookings of the one night, half from hotel-saas, half from hotel-member, sent at once."""
ALLOWANCE = 1
"""Rooms the second hotel may sell beyond what it has (`HOTELHUB_OVERBOOKING`)."""
START_TIMEOUT_S = 120
DECIDE_TIMEOUT_S = 90


@dataclass(frozen=True)
class Hotels:
    strict: str
    """No overbooking: the one room is sold once."""
    lenient: str
    """An allowance of `ALLOWANCE` room of `ROOM_TYPE`."""


@dataclass
class Race:
    """Two workers of one app on topics of their own; what the processor group gave each."""

    settings: HubSettings
    """The module's own topics (`isolated`): for the workers and everything the test sends
    or reads."""
    app_id: str
    workers: tuple[WorkerProcess, ...]
    processor_partitions: list[set[TopicPartition]] = field(default_factory=list)


@pytest.fixture(scope="module")
def hotels() -> Hotels:
    return Hotels(strict=new_hotel_id(), lenient=new_hotel_id())


@pytest.fixture(scope="module")
def two_workers(hub_settings: HubSettings, hotels: Hotels,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Race]:
    """Two started workers of one new app on topics of their own, the lenient hotel allowed
    to overbook."""
    settings = isolated(hub_settings, "last")
    log_dir = Path(tmp_path_factory.mktemp("last-room"))
    overbooking = json.dumps({hotels.lenient: {ROOM_TYPE: str(ALLOWANCE)}})
    workers = worker_group(settings, "last", log_dir, count=2,
                           extra_env={"HOTELHUB_OVERBOOKING": overbooking})
    with stopped_at_exit(*workers):
        for worker in workers:
            worker.start()
        yield Race(settings, workers[0].env["HOTELHUB_APP_ID"], tuple(workers))


def _logs(race: Race) -> str:
    return "\n".join(worker.log_tail() for worker in race.workers)


async def _sharing(race: Race, settings: HubSettings, session: aiohttp.ClientSession) -> None:
    """Until both workers serve and the hotel processor's group gave each of them some
    partitions of hotel.reservation (so both forward some of the racing bookings)."""
    reservations = settings.topic("hotel.reservation")

    async def ask() -> tuple[list[Answer | None], list[set[TopicPartition]]]:
        for worker in race.workers:
            assert worker.running(), f"{worker.name} exited\n{_logs(race)}"
        healths = [await get_or_none(session, f"{worker.url}/health")
                   for worker in race.workers]
        members = await group_assignment(settings, f"{race.app_id}-hotels")
        return healths, [{tp for tp in owned if tp.topic == reservations}
                         for owned in members.values()]

    def done(found: tuple[list[Answer | None], list[set[TopicPartition]]]) -> bool:
        healths, owned = found
        return (all(health is not None and health.status == 200 for health in healths)
                and len(owned) == 2 and all(owned))

    try:
        _, owned = await poll(ask, done, timeout_s=START_TIMEOUT_S, interval_s=0.5,
                              what="two serving workers sharing the hotel processor's partitions")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_logs(race)}") from None
    race.processor_partitions = owned


def _availability_path(hotel_id: str) -> str:
    night = NIGHT.isoformat()
    return f"/availability/{hotel_id}/{ROOM_TYPE}?from={night}&to={night}"


async def _nights(session: aiohttp.ClientSession, race: Race, hotel_id: str
                  ) -> list[dict[str, Any] | None]:
    """The night's availability from each worker (None while not answered with 200)."""
    found: list[dict[str, Any] | None] = []
    for worker in race.workers:
        answer = await get(session, worker.url + _availability_path(hotel_id))
        found.append(answer.body["nights"][0] if answer.status == 200 else None)
    return found


async def _publish_the_room(publishers: dict[System, HotelEventPublisher], hotel_id: str) -> None:
    system, document = sample(EventKind.ROOM, "STE-1", room_number="1001", room_type=ROOM_TYPE,
                              status="vacant_clean", availability_date=NIGHT.isoformat(),
                              maintenance_notes=None, version=1)
    await publishers[system].publish_document(
        {**document, "action": "status_changed", "hotel_id": hotel_id})


def _bookings(publishers: dict[System, HotelEventPublisher], hotel_id: str
              ) -> list[HotelEvent]:
    """`RACERS` bookings of the night, alternately from hotel-saas and hotel-member."""
    bookings = []
    for index in range(RACERS):
        system = (System.HOTEL_SAAS, System.HOTEL_MEMBER)[index % 2]
        _, document = sample(
            EventKind.RESERVATION, f"B{index:02d}", room_type=ROOM_TYPE, room_number=None,
            customer_id=f"C{index:02d}", checkin_date=NIGHT.isoformat(),
            checkout_date=(NIGHT + timedelta(days=1)).isoformat(),
            origin="member_app" if system is System.HOTEL_MEMBER else "direct_web")
        bookings.append(publishers[system].build({**document, "hotel_id": hotel_id}))
    return bookings


async def _refusals(settings: HubSettings, codec: ConfluentAvroCodec, hotel_id: str
                    ) -> list[Refusal]:
    return [await codec.decode_refusal(record.value or b"")
            for record in await read_topic(settings, settings.topic(REFUSAL_TOPIC))
            if of_hotel(record, hotel_id)]


async def race_for_the_last_room(race: Race, hotel_id: str, *, allowance: int) -> None:
    sold = 1 + allowance
    settings = race.settings
    async with aiohttp.ClientSession() as session, \
            SchemaRegistryClient(settings.registry_url) as registry, \
            publishers_of(settings) as publishers:
        codec = ConfluentAvroCodec(registry)
        await _sharing(race, settings, session)
        await _publish_the_room(publishers, hotel_id)
        await poll(lambda: _nights(session, race, hotel_id),
                   lambda nights: all(night is not None and night["in_house"] == 1
                                      and night["free"] == 1 for night in nights),
                   timeout_s=60, interval_s=0.3, what="the room in the house on both workers")

        bookings = _bookings(publishers, hotel_id)
        seen: list[int] = []
        racing = True

        async def watch() -> None:
            """Ask both workers for the night while the race runs: never below the limit."""
            while racing:
                seen.extend(night["free"] for night in await _nights(session, race, hotel_id)
                            if night is not None)
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        try:
            published = await asyncio.gather(*(
                publishers[System(event.updated_by_system)].send(event) for event in bookings))
            landed = {TopicPartition(p.topic, p.partition) for p in published}
            forwarders = [owned & landed for owned in race.processor_partitions]
            assert all(forwarders), (
                f"the bookings landed on {sorted(landed)} only, all forwarded by one worker "
                f"(processor partitions {race.processor_partitions}): no race")

            ids = {str(event.event_id): event for event in bookings}

            async def decided() -> tuple[list[str], list[Refusal]]:
                applied = []
                for event in bookings:
                    answer = await get(session, f"{race.workers[0].url}/reservations/"
                                                f"{hotel_id}/{event.data.reservation_id}")
                    if answer.status == 200:
                        applied.append(str(event.event_id))
                refusals = [r for r in await _refusals(settings, codec, hotel_id)
                            if str(r.refused_event_id) in ids]
                return applied, refusals

            applied, refusals = await poll(
                decided, lambda found: len(found[0]) + len(found[1]) >= RACERS,
                timeout_s=DECIDE_TIMEOUT_S, interval_s=0.5, what="every booking decided")
        finally:
            racing = False
            await watcher
        nights = await poll(lambda: _nights(session, race, hotel_id),
                            lambda nights: all(night is not None and night["sold"] == sold
                                               for night in nights),
                            timeout_s=30, interval_s=0.3, what="the sold night on both workers")
        states = last_states(await hotel_state_records(settings, race.app_id), hotel_id)
        dead = [record for record in await read_topic(settings, settings.topic(DEADLETTER_TOPIC))
                if of_hotel(record, hotel_id)]

    refused = Counter(str(refusal.refused_event_id) for refusal in refusals)
    report = (f"hotel {hotel_id}: applied {len(applied)}, refusals "
              f"{[(r.entity_id, r.reason_code.value, r.reason) for r in refusals][:4]}, "
              f"free seen {sorted(Counter(seen).items())}")
    print(f"\n{report}; bookings forwarded by "
          f"{[sorted(tp.partition for tp in owned) for owned in forwarders]}")
    assert len(applied) == sold, report
    assert set(applied).isdisjoint(refused), report
    assert set(refused) == set(ids) - set(applied), report
    assert max(refused.values()) == 1, f"a booking refused more than once: {refused}"
    for refusal in refusals:
        event = ids[str(refusal.refused_event_id)]
        assert refusal.reason_code.value == "overbooked", report
        assert NIGHT.isoformat() in refusal.reason, refusal.reason
        assert refusal.entity_id == event.data.reservation_id
        assert refusal.updated_by_system == event.updated_by_system
    stays = sorted(entity for tag, entity in states if tag == STAY)
    assert len(stays) == sold, f"stays in the committed state log: {stays}"
    assert not dead, f"{len(dead)} dead letters of the hotel"

    assert all(night == {"date": NIGHT.isoformat(), "in_house": 1, "sold": sold,
                         "out_of_order": 0, "free": -allowance} for night in nights), nights
    assert seen, "the watcher never got an answer"
    assert min(seen) >= -allowance, report


async def test_two_workers_sell_the_last_room_once(two_workers: Race, hotels: Hotels) -> None:
    await race_for_the_last_room(two_workers, hotels.strict, allowance=0)


async def test_an_overbooking_allowance_sells_exactly_one_more(
    two_workers: Race, hotels: Hotels,
) -> None:
    await race_for_the_last_room(two_workers, hotels.lenient, allowance=ALLOWANCE)
