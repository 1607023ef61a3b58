"""Event Storage sink: records/s from Kafka into PostgreSQL (issue 12's target: >= 20,000/s).

Each run publishes `--events` room status changes (a 1,200-room hotel's housekeeping; a
month of such a hotel is about 57k events) to topics of its own, then each side replays
the topic into a fresh database of its own, one after the other, with the same sink:

* copy: the hub's writer (`streams.storage.writer.EventWriter`): each polled batch (up to
  `storage_batch`, 5,000) is COPYed into a temporary table and inserted from it with
  `ON CONFLICT DO NOTHING`, in one transaction.
* insert: the same sink, consumer, decoding, rows and transaction per batch, written with
  a multi-row `INSERT ... ON CONFLICT DO NOTHING` through psycopg's `executemany` (which
  pipelines the statements): the usual alternative to COPY.

Both read the topic read_committed from its start to its end, decode every record against
its Avro contract, make its row (payload as JSONB, envelope columns, Kafka coordinates) and
are idempotent by record id. The clock runs from the sink's start (its schema is migrated
before) to its last batch committed. Then the copy side replays the same topic again into
its database, where every record is already stored (a redelivery or a second replay). Every
database must hold each event exactly once, or the run is unfair and exits 1. Median of
`--runs` (3). Run with `python -m bench.storage_sink`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.common import base_parser, drop_run_topics, main_loop, report, run_settings
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
from tests.support.events import status_change

ROOMS = 1200
TOPIC = POLICIES[EventKind.ROOM].topic


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
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


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
        f"| copy: the hub's sink (decode, rows, COPY into a temp table, INSERT ... ON "
        f"CONFLICT DO NOTHING per batch) | {median('copy'):,.0f} | {runs('copy')} |",
        f"| insert: the same sink writing each batch as a multi-row INSERT ... ON CONFLICT "
        f"DO NOTHING (executemany, pipelined) | {median('insert'):,.0f} | {runs('insert')} |",
        f"| copy, replaying again: every record already stored (nothing inserted) | "
        f"{median('copy_again'):,.0f} | {runs('copy_again')} |",
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
