"""How fast a restarted `hotelhub worker` serves again and drains what waited for it.

`python -m bench.worker_recovery --runs 3` (`--rate 300 --seconds 10 --signals TERM KILL`):

1. One worker process (`tests.support.workers.WorkerProcess`, as the hub, its own data dir
   and port) on topics of this run (`bench-recovery-<id>.`); a few events of each hotel
   first, so the worker's groups have committed on every partition the load uses.
2. Each run publishes a steady load: housekeeping changes of four hotels (one per
   partition), `--rate` events/s for `--seconds` (`publish_many` of what is due every 10 ms).
   Half way (`--kill-at`), the worker gets the signal: KILL (a crash) or TERM (a clean stop,
   waited for); the same worker is started again at once on the same data dir, as a
   supervisor restarts it, while the load goes on.
3. Timed from that spawn: `/health` answering 200 (polled every 50 ms), and the lag of each
   of the worker's groups (`streams.ops.lag.group_lag` on `hub_groups`, polled every 100 ms)
   back to 0 on every partition after the load ended: the hotel processor's (`<app>-hotels`:
   every event decided) and Faust's (`<app>`: the state log mirrored into the query tables),
   each given up `--catch-up-s` after the worker serves and the load ended (then the
   records still behind are shown). Also the records behind at the spawn (all the groups'
   lag: an event not yet forwarded to `<app>.hotel-events` counts once there and once on
   its event topic) and the most seen while it caught up.
4. The next run starts from the worker the last one started (TERM runs first: after a
   crash the mirror's backlog is still draining when the next run starts, and is counted
   in its "behind at restart"). Median of `--runs` per signal:
   a Markdown table, and bench/results/worker_recovery.json; the run's topics are deleted.

Loopback only; bounded by `--timeout-s`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    HUB,
    Deadline,
    check_loopback,
    drop_run_topics,
    free_port,
    grant_run,
    main_loop,
    report,
)
from streams.core.kinds import System
from streams.ops.lag import Lag, group_lag, hub_groups
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings, get_settings
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import status_change
from tests.support.hotel import hotels_covering
from tests.support.workers import WorkerProcess, worker_env

TICK_S = 0.01
HEALTH_EVERY_S = 0.05
LAG_EVERY_S = 0.1
ROOMS = 200
"""Rooms per hotel the housekeeping changes go round."""


@dataclass
class Recovery:
    """One restart, its times in seconds from the new process's spawn."""

    signal: str
    stop_s: float
    """From the signal to the old process's exit (KILL: at once)."""
    behind_at_start: int
    most_behind: int
    health_s: float
    load_end_s: float
    decided_s: float | None
    """Zero lag of the hotel processor's group (`<app>-hotels`): every event decided."""
    mirrored_s: float | None
    """Zero lag of the Faust app's group (`<app>`): the state log mirrored into the tables."""
    left_behind: int
    """Records still behind when `--catch-up-s` after the load's end ran out (0: none)."""


@dataclass
class Load:
    """Housekeeping changes for `hotels`, numbered on across runs so each room's versions
    keep rising."""

    hotels: list[str]
    sent: int = 0
    failed: list[str] = field(default_factory=list)

    def documents(self, count: int) -> list[dict[str, Any]]:
        first, self.sent = self.sent, self.sent + count
        return [{**status_change(index, rooms=ROOMS),
                 "hotel_id": self.hotels[index % len(self.hotels)]}
                for index in range(first, first + count)]


def configure() -> HubSettings:
    prefix = f"bench-recovery-{uuid.uuid4().hex[:8]}."
    os.environ.update({"HOTELHUB_TOPIC_PREFIX": prefix, "HOTELHUB_APP_ID": f"{prefix}hub",
                       "HOTELHUB_IDENTITY": HUB})
    get_settings.cache_clear()
    settings = get_settings()
    check_loopback(settings)
    grant_run(settings)
    return settings


async def paced(publisher: HotelEventPublisher, load: Load, rate: float, seconds: float
                ) -> float:
    """`rate` events/s for `seconds`: every tick what is due, not waiting for earlier acks;
    when the last was acknowledged."""
    count = int(rate * seconds)
    started = time.monotonic()
    sent = 0
    pending: list[asyncio.Task[Any]] = []
    while sent < count:
        due = min(count, int((time.monotonic() - started) * rate) + 1) - sent
        if due > 0:
            pending.append(asyncio.create_task(publisher.publish_many(load.documents(due))))
            sent += due
        await asyncio.sleep(TICK_S)
    for outcomes in await asyncio.gather(*pending):
        load.failed += [str(o.problem) for o in outcomes if not o.ok]
    return time.monotonic()


async def healthy(session: aiohttp.ClientSession, worker: WorkerProcess) -> bool:
    if not worker.running():
        raise RuntimeError(f"the worker exited\n{worker.log_tail()}")
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.get(f"{worker.url}/health",
                               timeout=aiohttp.ClientTimeout(total=1)) as answer:
            return answer.status == 200
    return False


def settled(lag: Lag, expected: set[Any], group: str) -> bool:
    """Every partition `group` committed on before is there, and none of them lags."""
    mine = {key: records for key, records in lag.items() if key[0] == group}
    return {key for key in expected if key[0] == group} <= mine.keys() and not any(mine.values())


async def one_run(settings: HubSettings, worker: WorkerProcess, publisher: HotelEventPublisher,
                  load: Load, how: signal.Signals, options: argparse.Namespace,
                  expected: set[Any], deadline: Deadline) -> Recovery:
    groups = hub_groups(settings)
    publishing = asyncio.create_task(paced(publisher, load, options.rate, options.seconds))
    await asyncio.sleep(options.seconds * options.kill_at)
    process = worker.process
    assert process is not None and worker.running(), worker.log_tail()
    signalled = time.monotonic()
    if how is signal.SIGTERM:
        await asyncio.to_thread(worker.stop)  # waits for the exit (SIGKILL after 30 s)
    else:
        os.kill(process.pid, how)
        await asyncio.to_thread(process.wait, 10)
    stopped = time.monotonic()
    worker.start()
    spawned = time.monotonic()
    behind_at_start = sum((await group_lag(settings, groups)).values())
    async with aiohttp.ClientSession() as session:
        while not await healthy(session, worker):
            deadline.remaining_s()
            await asyncio.sleep(HEALTH_EVERY_S)
    health = time.monotonic()
    most_behind = behind_at_start
    while not publishing.done():
        most_behind = max(most_behind, sum((await group_lag(settings, groups)).values()))
        await asyncio.sleep(min(LAG_EVERY_S, deadline.remaining_s()))
    load_end = await publishing
    # `hub_groups`: Faust's, then the processor's.
    zero: dict[str, float | None] = dict.fromkeys(groups)
    while True:
        lag = await group_lag(settings, groups)
        most_behind = max(most_behind, sum(lag.values()))
        now = time.monotonic()
        for group in groups:
            if zero[group] is None and settled(lag, expected, group):
                zero[group] = round(now - spawned, 2)
        if all(zero.values()) or now - max(load_end, health) > options.catch_up_s:
            break
        if not worker.running():
            raise RuntimeError(f"the worker exited\n{worker.log_tail()}")
        await asyncio.sleep(min(LAG_EVERY_S, deadline.remaining_s()))
    return Recovery(signal=how.name, stop_s=round(stopped - signalled, 2),
                    behind_at_start=behind_at_start, most_behind=most_behind,
                    health_s=round(health - spawned, 2), load_end_s=round(load_end - spawned, 2),
                    decided_s=zero[groups[1]], mirrored_s=zero[groups[0]],
                    left_behind=sum(lag.values()))


async def run(options: argparse.Namespace, work: Path) -> dict[str, Any]:
    deadline = Deadline(options.timeout_s)
    settings = configure()
    from streams.worker.run import prepare

    await asyncio.wait_for(prepare(settings), timeout=deadline.remaining_s())
    port = free_port()
    env = worker_env(settings, app_id=settings.app_id, web_port=port, data_dir=work / "data")
    # No report ticks: records of the clock's own would make lag move without the load.
    worker = WorkerProcess("worker", {**env, "HOTELHUB_REPORT_TICK_S": "0"}, port, work)
    load = Load(hotels_covering(settings.topic_partitions))
    runs: list[Recovery] = []
    try:
        async with SchemaRegistryClient.from_settings(settings) as registry, \
                HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                                    settings=settings) as publisher:
            # Started twice: on a new app's first start Faust may subscribe to
            # `<app>.hotel-state` as the processor creates it, and see its partitions only
            # at its next metadata refresh (5 min); the second start finds every topic.
            for _ in range(2):
                await asyncio.to_thread(worker.stop)
                worker.start()
                async with aiohttp.ClientSession() as session:
                    while not await healthy(session, worker):
                        deadline.remaining_s()
                        await asyncio.sleep(HEALTH_EVERY_S)
            # A few of each hotel: the groups commit on every partition the load uses.
            await publisher.publish_many(load.documents(4 * len(load.hotels)))
            groups = hub_groups(settings)
            while True:  # both groups committed (Faust's mirror after the processor), lag 0
                lag = await group_lag(settings, groups)
                if {group for group, _ in lag} == set(groups) and not any(lag.values()):
                    break
                await asyncio.sleep(min(LAG_EVERY_S, deadline.remaining_s()))
            expected = set(lag)
            groups_note = (f"{groups[1]} decides the events, {groups[0]} mirrors the state "
                           "log into the query tables")
            for how in options.signals:
                for number in range(1, options.runs + 1):
                    recovery = await one_run(settings, worker, publisher, load,
                                             signal.Signals[f"SIG{how}"], options, expected,
                                             deadline)
                    print(f"{how} run {number}: {recovery}", flush=True)
                    runs.append(recovery)
    finally:
        await asyncio.to_thread(worker.stop)
        await drop_run_topics(settings)
    if load.failed:
        raise SystemExit(f"{len(load.failed)} events not published: {load.failed[:3]}")
    return {"runs": [asdict(r) for r in runs],
            "medians": {how: medians([r for r in runs if r.signal == f"SIG{how}"])
                        for how in options.signals},
            "events published": load.sent, "groups": groups_note,
            "worker log": str(worker.logs[-1]) if options.work_dir else None}


FIGURES = ("stop_s", "health_s", "load_end_s", "decided_s", "mirrored_s", "behind_at_start",
           "most_behind", "left_behind")
COUNTS = ("behind_at_start", "most_behind", "left_behind")


def medians(runs: list[Recovery]) -> dict[str, float | None]:
    """Each figure's median; None when a run never got there (within `--catch-up-s`)."""
    found: dict[str, float | None] = {}
    for name in FIGURES:
        values = [getattr(r, name) for r in runs]
        found[name] = None if None in values else statistics.median(values)
    return found


def markdown(document: dict[str, Any]) -> str:
    rows = ["| stop | signal -> exit (s) | restart -> /health 200 (s) | restart -> load end (s) "
            "| restart -> processor lag 0 (s) | restart -> mirror lag 0 (s) "
            "| records behind at restart | most behind | still behind at the cap |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for how, figures in document["medians"].items():
        each = [r for r in document["runs"] if r["signal"] == f"SIG{how}"]

        def cell(name: str, runs: list[dict[str, Any]] = each,
                 figures: dict[str, float | None] = figures) -> str:
            value = figures[name]
            text = ("not reached" if value is None
                    else f"{value:,.0f}" if name in COUNTS else f"{value:.2f}")
            return f"**{text}** ({' / '.join(str(r[name]) for r in runs)})"

        rows.append(f"| {how} | " + " | ".join(cell(name) for name in FIGURES) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="runs per signal; the median is shown")
    parser.add_argument("--rate", type=float, default=300.0, help="events/s of the load")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run's load")
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="share of the load published when the worker is signalled")
    parser.add_argument("--signals", nargs="+", default=["TERM", "KILL"], choices=("TERM", "KILL"),
                        help="in this order: a crash leaves the mirror behind for the next run")
    parser.add_argument("--catch-up-s", type=float, default=30.0,
                        help="how long a run waits for zero lag once the worker serves "
                        "and the load ended")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the worker's data dir and logs here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=None, help="JSON results file")
    options = parser.parse_args(argv)
    if options.runs < 1 or options.rate <= 0 or options.seconds <= 0 \
            or not 0 < options.kill_at < 1:
        parser.error("--runs must be >= 1, --rate and --seconds > 0, --kill-at between 0 and 1")

    async def measured() -> dict[str, Any]:
        if options.work_dir is not None:
            options.work_dir.mkdir(parents=True, exist_ok=True)
            return await run(options, options.work_dir)
        with tempfile.TemporaryDirectory(prefix="hotelhub-bench-recovery-") as work:
            return await run(options, Path(work))

    document = main_loop(measured, timeout_s=options.timeout_s)
    env = {name: value for name, value in vars(options).items() if name != "output"}
    env.update({"CPU count": os.cpu_count(), "load average at the end": os.getloadavg()})
    report("worker_recovery", markdown(document), env, document, options.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
