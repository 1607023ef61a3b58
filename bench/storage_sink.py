"""Event Storage sink: records/s from Kafka into PostgreSQL (issue 12's target: >= 20,000/s).

Each run publishes `--events` room status changes (a 1,200-room hotel's housekeeping; a
month of such a hotel is about 57k events) to topics of its own, then each side replays
the topic into a fresh database of its own, one after the other, with the same sink:

* copy: the hub's writer (`streams.storage.writer.EventWriter`): each polled batch (up to
  `storage_batch`, 5,000) is COPYed straight into the table in one transaction (through a
  temporary table and `INSERT ... ON CONFLICT DO NOTHING` when some are stored already).
* insert: the same sink, consumer, decoding, rows and transaction per batch, written with
  a multi-row `INSERT ... ON CONFLICT DO NOTHING` through psycopg's `executemany` (which
  pipelines the statements): the usual alternative to COPY.

Both read the topic read_committed from its start to its end, decode every record against
its Avro contract, make its row (payload as JSONB, envelope columns, Kafka coordinates) and
are idempotent by record id. The clock runs from the first batch polled to the last one
committed (the sink's start, schema check and connections, is left out). Then the copy side
replays the same topic again into its database, where every record is already stored (a
redelivery or a second replay).

* group: the platform's scale-out, `GROUP_SINKS` `hotelhub storage sink` processes in a
  consumer group of the run's own, into a fresh database; timed from the moment the
  group's assignment gives each of them room partitions to the last offset committed, with
  the CPU both used meanwhile (`group_side`).

Every database must hold each event exactly once, or the run is unfair and exits 1. Median
of `--runs` (3). The bench process quietens its collector as `hotelhub storage sink` does.
Run with `python -m bench.storage_sink`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from psycopg import sql

from bench.common import admin, base_parser, drop_run_topics, main_loop, report, run_settings
from streams.core.documents import build_event
from streams.core.kinds import POLICIES, EventKind, System
from streams.runners.admin import ensure_topics
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.storage.partitions import month_of
from streams.storage.records import COLUMNS, StoredRecord
from streams.storage.schema import migrate
from streams.storage.sink import EventSink, SinkStats, quiet_collector
from streams.storage.writer import EventWriter
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.eos import end_offsets
from tests.support.events import status_change

ROOMS = 1200
TOPIC = POLICIES[EventKind.ROOM].topic
GROUP_SINKS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class InsertWriter(EventWriter):
    """The same batches as one multi-row INSERT ... ON CONFLICT DO NOTHING each."""

    def write(self, records: Sequence[StoredRecord]) -> int:
        if not records:
            return 0
        self._prepare({month_of(record.occurred_at) for record in records})
        statement = sql.SQL("INSERT INTO event_store ({}) VALUES ({}) "
                            "ON CONFLICT DO NOTHING").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)))
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(statement, [record.row() for record in records],
                               returning=False)
            return max(cursor.rowcount, 0)


@asynccontextmanager
async def fresh_database(settings: HubSettings, name: str) -> AsyncIterator[str]:
    """A database of its own on the Event Storage's server, migrated, dropped at the end."""
    admin_dsn = settings.database_dsn()
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(admin_dsn)
    dsn = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        await asyncio.to_thread(migrate, dsn)
        yield dsn
    finally:
        await drop_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str, attempts: int = 10) -> None:
    """Drop a bench database; PostgreSQL's autovacuum may be working in it (just filled),
    which FORCE may not end without superuser rights: then wait a moment and try again."""
    for attempt in range(1, attempts + 1):
        try:
            async with await psycopg.AsyncConnection.connect(admin_dsn,
                                                             autocommit=True) as conn:
                await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == attempts:
                raise
            await asyncio.sleep(1.0)


async def stored(dsn: str) -> tuple[int, int]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cursor = await conn.execute("SELECT count(*), count(DISTINCT record_id) FROM event_store")
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


async def publish(settings: HubSettings, count: int) -> None:
    pms = settings.as_identity(System.HOTEL_PMS.value)
    events = [build_event(status_change(i, rooms=ROOMS, prefix="RM-BENCH"),
                          publisher=System.HOTEL_PMS, default_hotel_id=settings.default_hotel_id)
              for i in range(count)]
    async with (SchemaRegistryClient.from_settings(pms) as registry,
                HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                                    settings=pms) as publisher):
        for start in range(0, count, 5000):
            await publisher.publish_many(events[start:start + 5000])


async def timed(settings: HubSettings, dsn: str, writer: type[EventWriter]) -> SinkStats:
    return await EventSink(settings, dsn=dsn, topics=[TOPIC], replay=True, writer=writer).run()


def outcome(stats: SinkStats) -> dict[str, Any]:
    return {"seconds": stats.streaming_seconds, "start_s": stats.seconds - stats.streaming_seconds,
            "read": stats.read, "inserted": stats.inserted}


async def group_side(settings: HubSettings, dsn: str) -> dict[str, Any]:
    """`GROUP_SINKS` `hotelhub storage sink` processes in one consumer group of the run's own,
    timed from the moment the group's assignment gives each of them room partitions to the
    last offset committed, with the CPU they used meanwhile.

    They start against a table locked for writes, so the first to join cannot store the
    topic alone before the group has formed; the clock starts when the lock goes. Batches
    polled before the partitions were shared are read again by their new owner (and
    inserted once): a cost of joining, within the window."""
    command = [str(Path(sys.executable).with_name("hotelhub")), "storage", "sink",
               "--loglevel", "warning"]
    end = sum((await end_offsets(settings, [settings.topic(TOPIC)])).values())
    sinks: list[asyncio.subprocess.Process] = []
    client = await admin(settings)  # one client for the polling, not one per look
    try:
        async with (await psycopg.AsyncConnection.connect(dsn) as holder,
                    holder.transaction()):
            await holder.execute("LOCK TABLE event_store IN SHARE MODE")
            sinks.extend([await asyncio.create_subprocess_exec(
                *command, env={**os.environ, "DATABASE_URL": dsn},
                stdout=asyncio.subprocess.DEVNULL) for _ in range(GROUP_SINKS)])
            while not await _shared(client, settings):
                _running(sinks)
                await asyncio.sleep(0.1)
            began, cpu = time.perf_counter(), _cpu_s(sinks)
        while (done := await _committed(client, settings)) < end:
            _running(sinks)
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - began
        cpu = _cpu_s(sinks) - cpu
    finally:
        await client.close()
        for sink in sinks:
            if sink.returncode is None:
                sink.terminate()
        for sink in sinks:
            await asyncio.wait_for(sink.wait(), timeout=30)
    return {"seconds": seconds, "read": done, "inserted": done,
            "cpu_us_per_record": cpu / max(done, 1) * 1e6}


def _running(sinks: Sequence[asyncio.subprocess.Process]) -> None:
    ended = [sink.returncode for sink in sinks if sink.returncode is not None]
    if ended:
        raise RuntimeError(f"a sink of the group exited (status {ended[0]}) before the end")


async def _shared(client: AIOKafkaAdminClient, settings: HubSettings) -> bool:
    """The group is stable and gives each sink room partitions."""
    group, room = settings.storage_group, settings.topic(TOPIC)
    members = [member for response in await client.describe_consumer_groups([group])
               for described in response.to_object()["groups"]
               if described["group"] == group and described["state"] == "Stable"
               for member in described["members"]]
    return len(members) == GROUP_SINKS and all(
        member["member_assignment"] and any(
            tp.topic == room for tp in ConsumerProtocolMemberAssignment.decode(
                member["member_assignment"]).partitions())
        for member in members)


async def _committed(client: AIOKafkaAdminClient, settings: HubSettings) -> int:
    room = settings.topic(TOPIC)
    offsets = await client.list_consumer_group_offsets(settings.storage_group)
    return sum(meta.offset for tp, meta in offsets.items()
               if tp.topic == room and meta.offset > 0)


def _cpu_s(processes: Sequence[asyncio.subprocess.Process]) -> float:
    """User and system CPU of running processes, in seconds (Linux /proc)."""
    ticks = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


async def one_run(index: int, events: int, data_dir: Path) -> dict[str, Any]:
    settings = run_settings("storage", index, data_dir)
    try:
        await ensure_topics(settings)
        await publish(settings, events)
        result: dict[str, Any] = {}
        tag = uuid.uuid4().hex[:8]
        for name, writer in (("copy", EventWriter), ("insert", InsertWriter)):
            async with fresh_database(settings, f"bench_storage_{tag}_{name}") as dsn:
                first = await timed(settings, dsn, writer)
                result[name] = outcome(first) | {"stored": await stored(dsn)}
                if name == "copy":
                    again = await timed(settings, dsn, writer)
                    result["copy_again"] = outcome(again) | {"stored": await stored(dsn)}
        async with fresh_database(settings, f"bench_storage_{tag}_group") as dsn:
            result["group"] = await group_side(settings, dsn) | {
                "stored": await stored(dsn)}
        return result
    finally:
        await drop_run_topics(settings)


async def run(options: Any) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        for index in range(options.runs):
            outcome = await one_run(index, options.events, Path(tmp))
            results.append(outcome)
            print(f"run {index + 1}: " + ", ".join(
                f"{name} {side['read'] / side['seconds']:,.0f}/s" for name, side in
                outcome.items()), flush=True)
    unfair = [r for r in results for side in r.values()
              if side["stored"] != (options.events, options.events)]
    if unfair:
        print(f"unfair: a database does not hold each of {options.events} events once: "
              f"{unfair}", file=sys.stderr)

    def median(side: str) -> float:
        return float(statistics.median(r[side]["read"] / r[side]["seconds"] for r in results))

    def runs(side: str) -> str:
        return " / ".join(f"{r[side]['read'] / r[side]['seconds']:,.0f}" for r in results)

    table = "\n".join([
        f"| side ({options.events:,} room events, median of {options.runs}) | records/s | "
        "runs |",
        "|---|---:|---|",
        f"| copy: the hub's sink (decode, rows, one COPY per batch; a temp table and INSERT "
        f"... ON CONFLICT DO NOTHING when some are stored) | {median('copy'):,.0f} | "
        f"{runs('copy')} |",
        f"| insert: the same sink writing each batch as a multi-row INSERT ... ON CONFLICT "
        f"DO NOTHING (executemany, pipelined) | {median('insert'):,.0f} | {runs('insert')} |",
        f"| copy, replaying again: every record already stored (nothing inserted) | "
        f"{median('copy_again'):,.0f} | {runs('copy_again')} |",
        f"| group: {GROUP_SINKS} `hotelhub storage sink` processes in one consumer group, once "
        f"the group shares the partitions (CPU of both: "
        f"{statistics.median(r['group']['cpu_us_per_record'] for r in results):.0f} us a "
        f"record) | {median('group'):,.0f} | {runs('group')} |",
    ])
    report("storage_sink", table, {"events": options.events, "runs": options.runs},
           {"runs": results}, options.output)
    return 1 if unfair else 0


def main() -> None:
    parser = base_parser(__doc__, events=60_000, timeout_s=1200)
    options = parser.parse_args()
    quiet_collector()  # as `hotelhub storage sink` does
    sys.exit(main_loop(lambda: run(options), timeout_s=options.timeout_s))


if __name__ == "__main__":
    main()
