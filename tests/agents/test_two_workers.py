"""Two real worker processes in one group: either one answers for every key.

Each worker owns some partitions; a query for a key the other owns is forwarded to it,
and a room listing merges both workers' active partitions (never a standby copy).

The workers run at_least_once: under exactly_once, faust-streaming 0.15.3 picks the
transactional producer by the partition a record is sent TO (TransactionManager.send),
so an agent sending an availability delta or a derived room event whose key lands in a
partition the other worker owns crashes ("No transaction producer found") and its
partition stalls. That is a processing bug, not a query one; this test is about queries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest

from streams.kinds import System
from streams.publisher import HotelEventPublisher
from streams.settings import HubSettings
from tests.agents.conftest import free_port
from tests.support.hotel import Entity, availability_of, new_hotel_id, publish_hotel, rooms_of
from tests.support.http import Answer, get, get_or_none, poll
from tests.support.workers import WorkerProcess, stopped_at_exit, worker_app_id, worker_env

pytestmark = pytest.mark.integration

KEYS_PER_KIND = 40
T = TypeVar("T")
TABLES = ("room_to_state", "customer_to_state", "reservation_to_state",
          "room_type_to_availability")


@pytest.fixture
def two_workers(hub_settings: HubSettings, tmp_path: Path) -> Iterator[tuple[WorkerProcess, ...]]:
    """Two workers of one new group, not started yet; both stopped at the end."""
    app_id = worker_app_id(hub_settings, "two")
    workers = []
    for name in ("w1", "w2"):
        port = free_port()
        env = worker_env(hub_settings, app_id=app_id, web_port=port, data_dir=tmp_path / name,
                         processing_guarantee="at_least_once")
        workers.append(WorkerProcess(name, env, port, tmp_path))
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
    hub_settings: HubSettings,
    publishers: dict[System, HotelEventPublisher],
) -> None:
    """Half the keys are written while w1 is alone (w1 keeps copies of the partitions it
    then hands to w2), half after both share the partitions; every key from each worker."""
    partitions, half = hub_settings.topic_partitions, KEYS_PER_KIND // 2
    first, second = two_workers
    hotel_id = new_hotel_id()
    async with aiohttp.ClientSession() as session:
        first.start()
        await _until((first,), lambda: _healths(session, (first,)),
                     lambda found: found[0] is not None and found[0].status == 200,
                     "w1 serving")
        entities = await publish_hotel(publishers, hotel_id, count=half)
        await _until((first,), lambda: _problems(session, first, entities, None),
                     lambda problems: not problems, "w1 answering every key")

        second.start()
        healths = await _until(two_workers, lambda: _healths(session, two_workers),
                               lambda found: _split(found, partitions),
                               "two serving workers sharing partitions")
        owner = {
            (table, partition): worker.url
            for worker, health in zip(two_workers, healths, strict=True) if health
            for table, owned in health.body["active_partitions"].items()
            for partition in owned
        }
        entities += await publish_hotel(publishers, hotel_id, count=half, first=half)
        await _until(two_workers, lambda: _problems(session, first, entities, owner),
                     lambda problems: not problems, "state for every key")

        for worker in two_workers:
            await _every_key_from(session, worker, entities, owner)
            await _listing_from(session, worker, hotel_id, rooms_of(entities))
        await _same_availability_from_both(session, two_workers, hotel_id)


async def _problems(session: aiohttp.ClientSession, worker: WorkerProcess,
                    entities: list[Entity], owner: dict[tuple[str, int], str] | None
                    ) -> list[str]:
    found = [entity.problem(await get(session, worker.url + entity.path))
             for entity in entities]
    return [_where(entity, owner, problem) if owner else problem
            for entity, problem in zip(entities, found, strict=True) if problem]


def _where(entity: Entity, owner: dict[tuple[str, int], str], problem: str) -> str:
    return f"{problem} [partition {entity.partition} at {owner[entity.table, entity.partition]}]"


async def _every_key_from(session: aiohttp.ClientSession, worker: WorkerProcess,
                          entities: list[Entity], owner: dict[tuple[str, int], str]) -> None:
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


async def _listing_from(session: aiohttp.ClientSession, worker: WorkerProcess, hotel_id: str,
                        rooms: list[Entity]) -> None:
    answer = await get(session, f"{worker.url}/rooms/{hotel_id}")
    assert answer.status == 200, answer.body
    listed = [room["room_id"] for room in answer.body["rooms"]]
    assert sorted(listed) == sorted(room.expected["room_id"] for room in rooms), (
        f"{worker.name} listed {len(listed)} rooms, {len(set(listed))} distinct")
    numbers = [int(room["room_number"]) for room in answer.body["rooms"]]
    assert numbers == sorted(numbers)
    assert answer.body["count"] == len(rooms)

    dirty = await get(session, f"{worker.url}/rooms/{hotel_id}?status=vacant_dirty&type=TWN")
    assert dirty.status == 200 and dirty.body["rooms"] == [], dirty.body


async def _same_availability_from_both(session: aiohttp.ClientSession,
                                       workers: tuple[WorkerProcess, ...], hotel_id: str) -> None:
    """Each room type is one key: both workers give its owner's answer, with every room
    and stay counted once (the deltas w1 applied before the scale-out included)."""
    for entity in availability_of(hotel_id, KEYS_PER_KIND):
        answers = await _until(
            workers, lambda path=entity.path: _each(session, workers, path),
            lambda found, entity=entity: not any(entity.problem(answer) for answer in found),
            f"availability {entity.path} from both workers")
        assert answers[0].served_by == answers[1].served_by


async def _each(session: aiohttp.ClientSession, workers: tuple[WorkerProcess, ...], path: str
                ) -> list[Answer]:
    return [await get(session, worker.url + path) for worker in workers]
