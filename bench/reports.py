"""Reports (issue 9): how fast the real agent folds a hotel's month into its tables, and what
a monthly report costs to build on demand.

Each run starts the hub's worker in this process (`streams.worker.run.running_hub`: the
hotel processor, which writes each decided stay's and room's day contributions to
`<app>.report-facts` in its transactions, and `agents.reports`, which folds them into its
windowed tables), with `HOTELHUB_REPORT_TICK_S=0` so no report is sent while it is timed.

- aggregation: one hotel's month (120 rooms, `--rooms`; `tests.support.month.hotel_month`, October
  2026, Asia/Tokyo, JPY; the same events every run, in topics of the run's own) is
  published with the hub's publishers (one per system, each signing as itself), in chunks
  sent at once where no entity appears twice (as `bench.month` does). Timed from the first
  publish to the moment `GET /reports/{hotel}/monthly/2026-10-01` (polled every
  `--poll-s`) shows all of the month's sold room-nights as the independent oracle
  (`tests.support.report_oracle`) counts them. events/s = events published / that time;
  facts/s = the facts the processor wrote (records read back from the facts topic,
  read_committed; its end offsets also count transaction markers and are printed apart) /
  that time. Publishing, processing and polling share this process (one core, the GIL).
- build on demand, once loaded: the median of `--gets` (>= 5) `GET /reports` monthly calls
  as the operator (HTTP, routing, auth, table reads, the build, JSON); the same figures
  through `Reports.figures` in process (table reads + `DayTotals` validation + build); and
  `streams.core.reports.figures.report_figures` alone, on inputs read from the tables
  beforehand. One GET is profiled with cProfile (whole process) in the first run; the top 5
  entries by cumulative time are printed.

Median of `--runs` (default 3). Run with `python -m bench.reports`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import (
    OPERATOR,
    REPO_ROOT,
    Deadline,
    Stamp,
    drop_run_topics,
    environment,
    main_loop,
    records_in,
    refusals_and_dead_letters,
    report,
    run_settings,
    running_hub,
)
from streams.core.kinds import POLICIES, EventKind, System
from streams.core.reports.figures import report_figures
from streams.core.reports.periods import Period, ReportPeriod
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.topics import report_facts_topic
from streams.worker.auth import authorization

HOTEL = "HTL-BENCH-REPORTS"
ZONE, CURRENCY = "Asia/Tokyo", "JPY"
FIRST = date(2026, 10, 1)
MONTH = ReportPeriod(Period.MONTHLY, FIRST)


def the_month(rooms: int) -> tuple[list[Any], int]:
    """The month's events in publish order, and its sold room-nights by the oracle."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.month import hotel_month
    from tests.support.report_oracle import expected_report

    events = hotel_month(hotel_id=HOTEL, timezone=ZONE, currency=CURRENCY, first=FIRST,
                         rooms=rooms)
    expected = expected_report(events, hotel_id=HOTEL, timezone=ZONE, currency=CURRENCY,
                               period="monthly", period_start=FIRST)
    return events, int(expected["rooms_sold"])


def chunks_by_entity(events: Sequence[Any], size: int) -> list[list[Any]]:
    """Publish order in chunks sent at once, an entity at most once per chunk (its events
    keep their order whichever producer sends them)."""
    found: list[list[Any]] = []
    chunk: list[Any] = []
    keys: set[str] = set()
    for item in events:
        kind = EventKind(item.document["type"])
        key = f"{kind}:{item.document['data'][POLICIES[kind].entity_key]}"
        if len(chunk) >= size or key in keys:
            found.append(chunk)
            chunk, keys = [], set()
        chunk.append(item)
        keys.add(key)
    if chunk:
        found.append(chunk)
    return found


async def publish(settings: HubSettings, batches: list[list[Any]]) -> int:
    sent = 0
    async with SchemaRegistryClient(settings.registry_url) as registry:
        publishers = {system: HotelEventPublisher(system=system, registry=registry,
                                                  settings=settings) for system in System}
        for publisher in publishers.values():
            await publisher.start()
        try:
            for batch in batches:
                await asyncio.gather(*(publishers[item.system].publish_document(item.document)
                                       for item in batch))
                sent += len(batch)
        finally:
            for publisher in publishers.values():
                await publisher.stop()
    return sent


class Queries:
    """GET /reports and /health on the in-process worker, as the operator."""

    def __init__(self, settings: HubSettings, session: aiohttp.ClientSession) -> None:
        self.base = f"http://127.0.0.1:{settings.web_port}"
        self.operator = settings.as_identity(OPERATOR)
        self.session = session

    async def status(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path, headers=authorization(self.operator),
                                    timeout=aiohttp.ClientTimeout(total=30)) as response:
            body = await response.json() if response.content_type == "application/json" \
                else await response.text()
            return response.status, body

    async def month(self) -> tuple[int, Any]:
        return await self.status(f"/reports/{HOTEL}/monthly/{FIRST.isoformat()}")

    async def until(self, ask: Any, check: Any, deadline: Deadline, poll_s: float) -> None:
        """Ask until `check(status, body)` holds; TimeoutError when the budget is spent."""
        while True:
            try:
                if check(*await ask()):
                    return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if deadline.remaining_s() <= 0:  # raises TimeoutError itself
                return
            await asyncio.sleep(poll_s)


async def facts_read_back(settings: HubSettings, topic: str) -> int:
    """Records in the facts topic, read read_committed (transaction markers not counted)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(), enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        count = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                count += len(records)
        return count
    finally:
        await consumer.stop()


def timed_ms(call: Any, times: int) -> list[float]:
    found = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        found.append((time.perf_counter() - started) * 1000)
    return found


def table_inputs(reports: Any) -> tuple[dict[date, Any], dict[str, dict[str, date]]]:
    """What `Reports.figures` hands `report_figures`, read from the tables once."""
    types = (reports.hotels.get(HOTEL) or {"types": []})["types"]
    days = {day: {room_type: reports._totals(HOTEL, room_type, day) for room_type in types}
            for day in MONTH.days}
    supply = {room_type: {room: date.fromisoformat(since) for room, since in (
        reports.supply.get(f"{HOTEL}:{room_type}") or {}).items()} for room_type in types}
    return days, supply


async def one_run(number: int, options: argparse.Namespace, events: list[Any], sold: int,
                  data_dir: Path, deadline: Deadline) -> dict[str, Any]:
    os.environ["HOTELHUB_REPORT_TICK_S"] = "0"
    settings = run_settings("reports", number, data_dir)
    operator = settings.as_identity(OPERATOR)
    batches = chunks_by_entity(events, options.chunk)
    result: dict[str, Any] = {"events": len(events), "sold_room_nights": sold}
    try:
        started_hub = time.perf_counter()
        async with (running_hub(settings) as hub,
                    aiohttp.ClientSession() as session):
            queries = Queries(settings, session)
            await queries.until(lambda: queries.status("/health"),
                                lambda status, _: status == 200, deadline, 0.2)
            result["start_up_s"] = round(time.perf_counter() - started_hub, 2)
            seen: dict[str, Any] = {}

            def all_sold(status: int, body: Any) -> bool:
                seen["last"] = (status, body)
                return status == 200 and body["figures"]["rooms_sold"] == sold

            first = Stamp.now()
            await publish(settings, batches)
            published = Stamp.now()
            await queries.until(queries.month, all_sold, deadline, options.poll_s)
            done = Stamp.now()
            result |= {
                "publish_s": round(published.wall_s - first.wall_s, 2),
                "aggregated_s": round(done.wall_s - first.wall_s, 2),
                "cpu_per_wall": round((done.cpu_s - first.cpu_s)
                                      / (done.wall_s - first.wall_s), 2),
            }
            topic = report_facts_topic(settings)
            result["facts"] = await facts_read_back(operator, topic)
            result["facts_end_offsets"] = await records_in(operator, [topic])
            result["events_per_s"] = round(len(events) / result["aggregated_s"], 1)
            result["facts_per_s"] = round(result["facts"] / result["aggregated_s"], 1)

            # Build on demand, once loaded.
            gets = []
            for _ in range(options.gets):
                began = time.perf_counter()
                status, body = await queries.month()
                gets.append((time.perf_counter() - began) * 1000)
                assert status == 200, body
            result["get_ms"] = round(statistics.median(gets), 2)
            reports = hub.installed["reports"]
            result["figures_ms"] = round(statistics.median(timed_ms(
                lambda: reports.figures(HOTEL, MONTH), options.gets)), 2)
            days, supply = table_inputs(reports)
            result["build_ms"] = round(statistics.median(timed_ms(
                lambda: report_figures(HOTEL, MONTH, days, supply,
                                       default_currency=settings.default_currency),
                options.gets)), 2)
            result["type_days_in_month"] = sum(1 for day in days.values()
                                                for totals in day.values() if totals.to_json())
            if number == 0:
                profile = cProfile.Profile()
                profile.enable()
                await queries.month()
                profile.disable()
                text = io.StringIO()
                pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(5)
                result["profile"] = text.getvalue()
        result |= await refusals_and_dead_letters(settings)
        return result
    finally:
        await drop_run_topics(settings)


def median(runs: Sequence[Mapping[str, Any]], name: str) -> float:
    return float(statistics.median(run[name] for run in runs))


async def run(options: argparse.Namespace) -> None:
    deadline = Deadline(options.timeout_s)
    events, sold = the_month(options.rooms)
    print(f"{len(events):,} events of {HOTEL}'s month, {sold:,} sold room-nights (oracle)",
          flush=True)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hotelhub-bench-") as data_dir:
        for number in range(options.runs):
            runs.append(await one_run(number, options, events, sold, Path(data_dir), deadline))
            shown = {name: value for name, value in runs[-1].items() if name != "profile"}
            print(f"run {number + 1}: {shown}", flush=True)
    rows = [
        ("aggregation: events/s", "events published / (first publish -> GET shows every "
         "sold room-night)", "events_per_s", ",.0f"),
        ("aggregation: facts/s", "facts written by the processor and folded by the agent "
         "/ the same time", "facts_per_s", ",.0f"),
        ("aggregation: seconds", "first publish -> the month's GET complete", "aggregated_s",
         ".2f"),
        ("publishing: seconds", "first publish -> last ack (part of the above)", "publish_s",
         ".2f"),
        ("CPU/wall while aggregating", "this process (publishers + worker)", "cpu_per_wall",
         ".2f"),
        ("GET /reports monthly, ms", f"median of {options.gets} calls once loaded",
         "get_ms", ".1f"),
        ("Reports.figures, ms", "table reads + DayTotals validation + build, in process",
         "figures_ms", ".1f"),
        ("report_figures, ms", "the pure build, inputs read beforehand", "build_ms", ".2f"),
    ]
    lines = ["| figure | what | median | runs |", "|---|---|---:|---|"]
    for label, what, name, fmt in rows:
        each = " / ".join(format(run[name], fmt) for run in runs)
        lines.append(f"| {label} | {what} | {format(median(runs, name), fmt)} | {each} |")
    counts = runs[0]
    table = "\n".join(lines) + (
        f"\n\n{counts['events']:,} events; {counts['facts']:,} facts read back "
        f"({counts['facts_end_offsets']:,} by end offsets, transaction markers included); "
        f"{counts['sold_room_nights']:,} sold room-nights; {counts['type_days_in_month']:,} "
        f"room-type days with figures in the month; refusals "
        f"{[run['refusals'] for run in runs]}, dead letters "
        f"{[run['dead letters'] for run in runs]}\n\ncProfile of one GET (run 1), top 5 by "
        f"cumulative time:\n\n```\n{runs[0].get('profile', '').strip()}\n```")
    env = environment(HubSettings(), options)
    report("reports", table, env, {"runs": runs}, options.output)
    if any(run["refusals"] or run["dead letters"] for run in runs):
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--rooms", type=int, default=120,
                        help="rooms of the simulated hotel (1,200: a large hotel's month)")
    parser.add_argument("--gets", type=int, default=7, help="GET /reports calls per run (>= 5)")
    parser.add_argument("--chunk", type=int, default=500, help="events sent at once")
    parser.add_argument("--poll-s", type=float, default=0.25,
                        help="how often the month's GET is asked while aggregating")
    parser.add_argument("--timeout-s", type=float, default=900,
                        help="budget for the whole benchmark (seconds)")
    parser.add_argument("--output", type=Path, default=None, help="JSON results file")
    options = parser.parse_args(argv)
    if options.runs < 1 or options.gets < 5 or options.chunk < 1 or options.poll_s <= 0:
        parser.error("--runs must be >= 1, --gets >= 5, --chunk >= 1, --poll-s > 0")
    main_loop(lambda: run(options), timeout_s=options.timeout_s)


if __name__ == "__main__":
    main()
