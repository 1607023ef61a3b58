"""Two real worker processes in one group: either one answers for every key.

The tables mirror the hotel processor's state log, so they are partitioned by hotel:
every key of a hotel (its rooms, customers, stays, availability) lives in partition
`hotel_partition(hotel_id, n)`. The test spreads its keys over one hotel per partition,
so both workers own some hotels however the partitions are split. A query for a key
the other worker owns is forwarded to it, and a hotel's room listing comes from the
worker that owns the hotel (never a standby copy). The workers and the test's publishers use
topics of the test's own (`tests.support.workers.isolated`).

With security on, the test asks as the operator (every hotel), and once more as a system
that sees one hotel: the hop to the owning worker carries the caller's credentials, so the
system gets its hotel from either worker and another hotel from neither (403), and no
secret reaches the workers' logs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest

from streams.core.identities import IssuedSecret
from streams.settings import HubSettings
from streams.wire.partitioning import hotel_partition
from tests.support.hotel import (
    Entity,
    availability_of,
    hotels_covering,
    publish_hotel,
    publishers_of,
    rooms_of,
)
from tests.support.http import (
    DEFAULT_IDENTITY,
    Answer,
    as_basic_auth,
    get,
    get_or_none,
    poll,
    query_identity,
)
from tests.support.workers import (
    WorkerProcess,
    isolated,
    stopped_at_exit,
    worker_group,
)

pytestmark = pytest.mark.integration

KEYS_PER_HOTEL = 10
"""Per kind and hotel; half while w1 is alone, half once both share the partitions."""
T = TypeVar("T")
TABLES = ("room_to_state", "customer_to_state", "reservation_to_state",
          "room_type_to_availability")
Owners = dict[tuple[str, int], str]
"""(table, partition) -> URL of the worker actively owning it."""


@pytest.fixture
def own_settings(hub_settings: HubSettings) -> HubSettings:
    """Topics of this test's own, for its workers and everything it publishes."""
    return isolated(hub_settings, "two")


@pytest.fixture
def two_workers(own_settings: HubSettings, tmp_path: Path) -> Iterator[tuple[WorkerProcess, ...]]:
    """Two workers of one new group, not started yet; both stopped at the end."""
    workers = worker_group(own_settings, "two", tmp_path, count=2)
    with stopped_at_exit(*workers):
        yield tuple(workers)


def _split(healths: list[Answer | None], partitions: int) -> bool:
    """Both serving, and each table's partitions divided between them, none twice."""
    if any(health is None or health.status != 200 for health in healths):
        return False
    for table in TABLES:
        owned = [set(health.body["active_partitions"][table]) for health in healths if health]
        if not all(owned) or set.union(*owned) != set(range(partitions)) or \
                sum(map(len, owned)) != partitions:
            return False
    return True


async def _healths(session: aiohttp.ClientSession, workers: tuple[WorkerProcess, ...]
                   ) -> list[Answer | None]:
    for worker in workers:
        assert worker.running(), f"{worker.name} exited\n{worker.log_tail()}"
    return [await get_or_none(session, f"{worker.url}/health") for worker in workers]


async def _until(workers: tuple[WorkerProcess, ...], ask: Callable[[], Awaitable[T]],
                 done: Callable[[T], bool], what: str) -> T:
    try:
        return await poll(ask, done, timeout_s=120, interval_s=0.5, what=what)
    except AssertionError as exc:
        logs = "\n".join(worker.log_tail() for worker in workers)
        raise AssertionError(f"{exc}\n{logs}") from None


async def test_either_worker_answers_for_every_key(
    two_workers: tuple[WorkerProcess, ...],
    own_settings: HubSettings,
) -> None:
    """Half the keys are written while w1 is alone (w1 keeps copies of the partitions it
    then hands to w2), half after both share the partitions; every key from each worker."""
    partitions, half = own_settings.topic_partitions, KEYS_PER_HOTEL // 2
    first, second = two_workers
    hotels = hotels_covering(partitions)
    async with aiohttp.ClientSession() as session, publishers_of(own_settings) as publishers, \
            _system_of(own_settings, hotels[0]) as scoped:

        def rooms_applied(workers: tuple[WorkerProcess, ...]
                          ) -> Callable[[list[Entity]], Awaitable[None]]:
            async def wait(rooms: list[Entity]) -> None:
                await _until(workers, lambda: _problems(session, first, rooms, None),
                             lambda problems: not problems, "rooms applied before bookings")
            return wait

        first.start()
        await _until((first,), lambda: _healths(session, (first,)),
                     lambda found: found[0] is not None and found[0].status == 200,
                     "w1 serving")
        entities: list[Entity] = []
        for hotel_id in hotels:
            entities += await publish_hotel(publishers, hotel_id, count=half,
                                            rooms_applied=rooms_applied((first,)))
        await _until((first,), lambda: _problems(session, first, entities, None),
                     lambda problems: not problems, "w1 answering every key")

        second.start()
        healths = await _until(two_workers, lambda: _healths(session, two_workers),
                               lambda found: _split(found, partitions),
                               "two serving workers sharing partitions")
        owner: Owners = {
            (table, partition): worker.url
            for worker, health in zip(two_workers, healths, strict=True) if health
            for table, owned in health.body["active_partitions"].items()
            for partition in owned
        }
        owning = {owner["room_to_state", hotel_partition(hotel_id, partitions)]
                  for hotel_id in hotels}
        assert owning == {first.url, second.url}, f"hotels owned by {owning} only"
        for hotel_id in hotels:
            entities += await publish_hotel(publishers, hotel_id, count=half, first=half,
                                            rooms_applied=rooms_applied(two_workers))
        await _until(two_workers, lambda: _problems(session, first, entities, owner),
                     lambda problems: not problems, "state for every key")

        for worker in two_workers:
            await _every_key_from(session, worker, entities, owner)
            for hotel_id in hotels:
                await _listing_from(session, worker, hotel_id, owner, partitions,
                                    [room for room in rooms_of(entities)
                                     if room.expected["hotel_id"] == hotel_id])
        for hotel_id in hotels:
            await _same_availability_from_both(session, two_workers, hotel_id, owner,
                                               partitions)
        if scoped is not None:
            await _scoped_from_both(session, two_workers, entities, owner, scoped, hotels)
    _no_secret_in_logs(two_workers, own_settings, scoped)


@asynccontextmanager
async def _system_of(settings: HubSettings, hotel_id: str
                     ) -> AsyncIterator[IssuedSecret | None]:
    """A system that sees only `hotel_id` (None when security is off)."""
    if not settings.secured:
        yield None
        return
    with query_identity(settings, hotel_id) as issued:
        yield issued


async def _scoped_from_both(session: aiohttp.ClientSession, workers: tuple[WorkerProcess, ...],
                            entities: list[Entity], owner: Owners, scoped: IssuedSecret,
                            hotels: list[str]) -> None:
    """The system's own hotel from each worker, by the owner (forwarded by the other one,
    with the system's credentials); another hotel from neither."""
    auth = as_basic_auth(scoped)
    own = [entity for entity in entities if entity.expected["hotel_id"] == hotels[0]][:3]
    other = next(entity for entity in entities if entity.expected["hotel_id"] == hotels[1])
    for worker in workers:
        for entity in own:
            answer = await get(session, worker.url + entity.path, auth=auth)
            assert entity.problem(answer) is None, (worker.name, entity.problem(answer))
            assert answer.served_by == owner[entity.table, entity.partition]
        refused = await get(session, worker.url + other.path, auth=auth)
        assert refused.status == 403 and hotels[1] in refused.body["detail"], refused
        nobody = await get(session, worker.url + own[0].path, auth=None)
        assert nobody.status == 401, nobody


def _no_secret_in_logs(workers: tuple[WorkerProcess, ...], settings: HubSettings,
                       scoped: IssuedSecret | None) -> None:
    operator = settings.as_identity(DEFAULT_IDENTITY).credentials()
    secrets = [secret for secret in (scoped and scoped.secret, operator and operator[1])
               if secret]
    for worker in workers:
        for log in worker.logs:
            text = log.read_text(encoding="utf-8", errors="replace")
            for secret in secrets:
                assert secret not in text, f"a query secret is in {log}"


async def _problems(session: aiohttp.ClientSession, worker: WorkerProcess,
                    entities: list[Entity], owner: Owners | None) -> list[str]:
    found = [entity.problem(await get(session, worker.url + entity.path))
             for entity in entities]
    return [_where(entity, owner, problem) if owner else problem
            for entity, problem in zip(entities, found, strict=True) if problem]


def _where(entity: Entity, owner: Owners, problem: str) -> str:
    return f"{problem} [partition {entity.partition} at {owner[entity.table, entity.partition]}]"


async def _every_key_from(session: aiohttp.ClientSession, worker: WorkerProcess,
                          entities: list[Entity], owner: Owners) -> None:
    problems, forwarded = [], 0
    for entity in entities:
        answer = await get(session, worker.url + entity.path)
        problem = entity.problem(answer)
        if problem:
            problems.append(problem)
        elif answer.served_by != owner[entity.table, entity.partition]:
            problems.append(f"{entity.path} (partition {entity.partition}) answered by "
                            f"{answer.served_by}, owner is {owner[entity.table, entity.partition]}")
        forwarded += answer.served_by != worker.url
    assert not problems, f"{worker.name}: {len(problems)} wrong answers: {problems[:5]}"
    assert forwarded, f"{worker.name} answered every key itself: nothing was routed"
    assert forwarded < len(entities), f"{worker.name} answered no key itself"


async def _listing_from(session: aiohttp.ClientSession, worker: WorkerProcess, hotel_id: str,
                        owner: Owners, partitions: int, rooms: list[Entity]) -> None:
    """The hotel's rooms, every one once, sorted by number, from the worker owning the hotel."""
    answer = await get(session, f"{worker.url}/rooms/{hotel_id}")
    assert answer.status == 200, answer.body
    listed = [room["room_id"] for room in answer.body["rooms"]]
    assert sorted(listed) == sorted(room.expected["room_id"] for room in rooms), (
        f"{worker.name} listed {len(listed)} rooms of {hotel_id}, {len(set(listed))} distinct")
    numbers = [int(room["room_number"]) for room in answer.body["rooms"]]
    assert numbers == sorted(numbers)
    assert answer.body["count"] == len(rooms)
    assert {room["hotel_id"] for room in answer.body["rooms"]} == {hotel_id}
    hotel_owner = owner["room_to_state", hotel_partition(hotel_id, partitions)]
    assert answer.served_by == hotel_owner, (
        f"{worker.name}: listing of {hotel_id} served by {answer.served_by}, "
        f"the hotel's owner is {hotel_owner}")

    dirty = await get(session, f"{worker.url}/rooms/{hotel_id}?status=vacant_dirty&type=TWN")
    assert dirty.status == 200 and dirty.body["rooms"] == [], dirty.body


async def _same_availability_from_both(
    session: aiohttp.ClientSession, workers: tuple[WorkerProcess, ...], hotel_id: str,
    owner: Owners, partitions: int,
) -> None:
    """Each room type is one key: both workers give its owner's answer, with every room
    and stay counted once (those w1 applied before the scale-out included)."""
    for entity in availability_of(hotel_id, KEYS_PER_HOTEL, partitions=partitions):
        answers = await _until(
            workers, lambda path=entity.path: _each(session, workers, path),
            lambda found, entity=entity: not any(entity.problem(answer) for answer in found),
            f"availability {entity.path} from both workers")
        assert {answer.served_by for answer in answers} == {
            owner[entity.table, entity.partition]}, [answer.served_by for answer in answers]


async def _each(session: aiohttp.ClientSession, workers: tuple[WorkerProcess, ...], path: str
                ) -> list[Answer]:
    return [await get(session, worker.url + path) for worker in workers]
