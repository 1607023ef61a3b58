"""How long a fresh `hotelhub worker` process takes to serve again: warm and cold.

`python -m bench.restore --runs 3`:

1. 100k customers and 5k rooms (`--customers`, `--rooms`) of one hotel are published
   with the hub's publishers (`bench.state.publish`) into topics of this run
   (`HOTELHUB_TOPIC_PREFIX=bench-restore-<id>.`), and a first worker process decides
   them all (state log, changelogs, its data dir filled); it is stopped (SIGTERM).
2. Each run starts a new worker process and times it from spawn to serving: its
   `/health` answers 200 and a sample query (the last customer and the last room)
   answers 200; then it is stopped. The log also gives when the hotel processor had
   every partition restored.
   - `warm`: the data dir of the previous process (RocksDB tables kept);
   - `cold`: an empty data dir;
   - `memory` (`--sides`): `HOTELHUB_TABLE_STORE=memory`, the tables as before RocksDB.
3. Median of `--runs` per side: a Markdown table, and bench/results/restore.json.

Every topic of the run is deleted at the end; loopback only; bounded by `--timeout-s`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    HUB,
    REPO_ROOT,
    RESULTS_DIR,
    Deadline,
    check_loopback,
    drop_run_topics,
    free_port,
    grant_run,
    watchdog,
)
from bench.state import customer_doc, publish, room_doc
from streams.settings import HubSettings, get_settings
from streams.wire.registry_client import SchemaRegistryClient
from streams.worker.auth import authorization
from tests.support.workers import WORKER_COMMAND

HOTEL = "BENCH-FILL"
log = logging.getLogger("bench.restore")

_LOG_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _stamp(line: str) -> float | None:
    """The wall time of a worker log line (`WORKER_COMMAND` logs `asctime` first)."""
    match = _LOG_STAMP.match(line)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def configure() -> HubSettings:
    run = uuid.uuid4().hex[:8]
    prefix = f"bench-restore-{run}."
    # The workers act as the hub (the environment reaches them), the publishers as their
    # systems; the run's prefix is granted here and its grants go with its topics.
    os.environ.update({"HOTELHUB_TOPIC_PREFIX": prefix, "HOTELHUB_APP_ID": f"{prefix}hub",
                       "HOTELHUB_IDENTITY": HUB})
    os.environ.pop("HOTELHUB_WORKER_DATA_DIR", None)
    os.environ.pop("HOTELHUB_TABLE_STORE", None)
    get_settings.cache_clear()
    settings = get_settings()
    check_loopback(settings)
    grant_run(settings)
    return settings


def _status(url: str, headers: dict[str, str]) -> int:
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return 0


class Worker:
    """One worker process on this run's topics, with its own data dir, log and port."""

    def __init__(self, data_dir: Path, log_path: Path, *, store: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = {**os.environ, "HOTELHUB_WORKER_DATA_DIR": str(data_dir),
                    "HOTELHUB_WEB_PORT": str(self.port), "HOTELHUB_TABLE_STORE": store,
                    "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        with self.log_path.open("wb") as out:
            started = time.time()
            self.process = subprocess.Popen(WORKER_COMMAND, env=self.env, cwd=REPO_ROOT,
                                            stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        return started

    def serving(self, customers: int, rooms: int) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"worker exited; see {self.log_path}")
        base = f"http://127.0.0.1:{self.port}"
        auth = authorization(get_settings().as_identity("operator"))  # sees every hotel
        return (_status(f"{base}/health", auth) == 200
                and _status(f"{base}/customers/{HOTEL}/{HOTEL}-C{customers - 1:06d}",
                            auth) == 200
                and _status(f"{base}/rooms/{HOTEL}/{HOTEL}-RM{rooms - 1:05d}", auth) == 200)

    def wait_serving(self, customers: int, rooms: int, deadline: Deadline) -> None:
        while not self.serving(customers, rooms):
            deadline.remaining_s()
            time.sleep(0.05)

    def hotels_restored_at(self, partitions: int) -> float | None:
        stamps = [_stamp(line) for line in
                  self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                  if "hotel partition" in line and "states restored" in line]
        found = [stamp for stamp in stamps if stamp is not None]
        return max(found) if len(found) >= partitions else None

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def timed_start(worker: Worker, settings: HubSettings, options: argparse.Namespace,
                deadline: Deadline) -> dict[str, Any]:
    started = worker.start()
    try:
        worker.wait_serving(options.customers, options.rooms, deadline)
        serving = time.time()
        hotels = None
        while hotels is None and time.time() - serving < 30:
            hotels = worker.hotels_restored_at(settings.topic_partitions)
            time.sleep(0.1) if hotels is None else None
        return {"seconds_to_serving": round(serving - started, 2),
                "seconds_to_hotel_state_restored":
                    None if hotels is None else round(hotels - started, 2)}
    finally:
        worker.stop()


async def fill(settings: HubSettings, options: argparse.Namespace) -> dict[str, Any]:
    documents = [room_doc(HOTEL, index) for index in range(options.rooms)]
    documents += [customer_doc(HOTEL, index) for index in range(options.customers)]
    async with SchemaRegistryClient(settings.registry_url) as registry:
        ids, seconds = await publish(documents, settings=settings, registry=registry,
                                     chunk=options.chunk)
    return {"events": len(ids), "publish_s": round(seconds, 1)}


def run(options: argparse.Namespace, work: Path) -> dict[str, Any]:
    deadline = Deadline(options.timeout_s)
    settings = configure()
    from streams.worker.run import prepare

    asyncio.run(asyncio.wait_for(prepare(settings), timeout=deadline.remaining_s()))
    sides: dict[str, list[dict[str, Any]]] = {side: [] for side in options.sides}
    try:
        published = asyncio.run(fill(settings, options))
        log.warning("published %s; a first worker decides them", published)
        warm_dir = work / "warm"
        first = Worker(warm_dir, work / "fill.log", store="rocksdb")
        filled = timed_start(first, settings, options, deadline)
        log.warning("first worker (decides everything, fills its data dir): %s", filled)
        for run_index in range(options.runs):
            for side in options.sides:
                data_dir = warm_dir if side == "warm" else work / f"{side}-{run_index}"
                store = "memory" if side == "memory" else "rocksdb"
                worker = Worker(data_dir, work / f"{side}-{run_index}.log", store=store)
                figures = timed_start(worker, settings, options, deadline)
                sides[side].append(figures)
                log.warning("%s run %d: %s", side, run_index + 1, figures)
                if side != "warm":
                    shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        asyncio.run(drop_run_topics(settings))
    return {
        "published": published, "first worker": filled,
        "sides": {side: {"median_seconds_to_serving": statistics.median(
                             run["seconds_to_serving"] for run in runs),
                         "runs": runs} for side, runs in sides.items() if runs},
        "environment": {
            "customers": options.customers, "rooms": options.rooms, "runs": options.runs,
            "topic partitions": settings.topic_partitions, "CPU count": os.cpu_count(),
            "load average at the end": os.getloadavg(),
            "Kafka": f"{settings.kafka_version} at {settings.bootstrap_servers}",
            "run at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


DOES = {
    "warm": "RocksDB tables, the data dir of the previous worker",
    "cold": "RocksDB tables, an empty data dir",
    "memory": "in-memory tables (HOTELHUB_TABLE_STORE=memory), restored whole",
}


def markdown(document: dict[str, Any]) -> str:
    rows = ["| start | tables | spawn -> serving, median (s) | runs (s) "
            "| spawn -> hotel state restored (s) |", "|---|---|---:|---|---|"]
    for side, figures in document["sides"].items():
        runs = " / ".join(f"{run['seconds_to_serving']:.1f}" for run in figures["runs"])
        hotels = " / ".join(str(run["seconds_to_hotel_state_restored"])
                            for run in figures["runs"])
        rows.append(f"| {side} | {DOES[side]} | {figures['median_seconds_to_serving']:.1f} "
                    f"| {runs} | {hotels} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sides", nargs="+", default=["warm", "cold"],
                        choices=("warm", "cold", "memory"))
    parser.add_argument("--chunk", type=int, default=500, help="sends in flight at once")
    parser.add_argument("--timeout-s", type=float, default=1200.0)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the workers' data dirs and logs here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "restore.json")
    options = parser.parse_args(argv)
    if options.runs < 1 or options.customers < 1 or options.rooms < 1:
        parser.error("--runs, --customers and --rooms must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    watchdog(options.timeout_s + 120)
    if options.work_dir is not None:
        options.work_dir.mkdir(parents=True, exist_ok=True)
        document = run(options, options.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="hotelhub-bench-restore-") as work:
            document = run(options, Path(work))
    table = markdown(document)
    print()
    print(table)
    print()
    for name, value in document["environment"].items():
        print(f"- {name}: {value}")
    options.output.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        options.output.write_text(json.dumps({**document, "table": table}, indent=2,
                                             default=str) + "\n", encoding="utf-8")
    print(f"\nJSON written to {options.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
