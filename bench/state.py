"""Throughput of the state agents, and how long a fresh worker takes to restore the tables.

Two figures the issue asks for, on one broker in one run:

1. events/s through the state agents (stays, rooms, customers, availability) for one
   worker: a mixed stream of rooms, customers, bookings, check-ins and check-outs is
   published first, then the hub's app runs in this process under a new consumer group
   and an agent sink times it from the first processed event to the last published one.
2. restore time: the same app then applies 100k customer `created` events and 5k room
   events, stops, and a fresh `hotelhub worker` process (same app id) is started and
   timed until Faust logs "Recovery complete" for its tables.

Run with `python -m bench.state`. Everything goes to topics of this run's own
(`HOTELHUB_TOPIC_PREFIX=bench-state-<id>.`, which the worker subprocess inherits),
deleted at the end with the app's changelogs; the hub's `hotel.*` topics are untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import (
    AgentSink,
    Deadline,
    Progress,
    Rate,
    check_loopback,
    chunks,
    free_port,
)
from streams.core.kinds import EventKind, System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings, get_settings
from streams.wire.registry_client import SchemaRegistryClient

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "state.json"
TABLES = ("room_to_state", "customer_to_state", "reservation_to_state",
          "room_type_to_availability")
ROOM_TYPES = ("DBL", "TWN", "SGL", "STE")
FIRST_NIGHT = date(2026, 11, 23)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")

log = logging.getLogger("bench.state")


# --- set-up --------------------------------------------------------------------------


def configure(data_dir: Path) -> HubSettings:
    """Own topic prefix, app id, web port and data dir (in the environment too, for the
    worker subprocess)."""
    run = uuid.uuid4().hex[:8]
    os.environ.update({
        "HOTELHUB_TOPIC_PREFIX": f"bench-state-{run}.",
        # Under the prefix, so deleting the prefix's topics also removes the changelogs.
        "HOTELHUB_APP_ID": f"bench-state-{run}.hotelhub",
        "HOTELHUB_WEB_PORT": str(free_port()),
        "HOTELHUB_WORKER_DATA_DIR": str(data_dir / "inprocess"),
    })
    get_settings.cache_clear()
    settings = get_settings()
    check_loopback(settings)
    return settings


async def drop_run_topics(settings: HubSettings) -> list[str]:
    """Delete every topic of this run (hub topics, changelogs, assignor, deltas)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                request_timeout_ms=int(settings.connect_timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout=settings.connect_timeout_s)
    try:
        names = await asyncio.wait_for(admin.list_topics(), timeout=settings.connect_timeout_s)
        ours = sorted(name for name in names if name.startswith(settings.topic_prefix))
        if ours and settings.topic_prefix.startswith("bench-state-"):
            await asyncio.wait_for(admin.delete_topics(ours), timeout=30)
        return ours
    finally:
        await admin.close()


async def record_counts(settings: HubSettings, topics: Sequence[str]) -> dict[str, int]:
    """Records per existing topic: end minus start offsets over its partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await asyncio.wait_for(admin.start(), timeout=settings.connect_timeout_s)
    try:
        existing = set(await admin.list_topics())
        described = await admin.describe_topics([t for t in topics if t in existing])
    finally:
        await admin.close()
    tps = {entry["topic"]: [TopicPartition(entry["topic"], p["partition"])
                            for p in entry["partitions"]] for entry in described}
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    await asyncio.wait_for(consumer.start(), timeout=settings.connect_timeout_s)
    try:
        counts = {}
        for topic in topics:
            parts = tps.get(topic, [])
            ends = await consumer.end_offsets(parts) if parts else {}
            starts = await consumer.beginning_offsets(parts) if parts else {}
            counts[topic] = sum(ends[tp] - starts[tp] for tp in parts)
        return counts
    finally:
        await consumer.stop()


# --- events --------------------------------------------------------------------------


def _sample() -> Any:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.events import sample

    return sample


def _id() -> str:
    """Ids chosen here, so a batch's ids are known before it is published."""
    return str(uuid.uuid4())


def room_doc(hotel: str, index: int) -> tuple[System, dict[str, Any]]:
    system, doc = _sample()(EventKind.ROOM, f"{hotel}-RM{index:05d}",
                           room_number=str(1000 + index),
                           room_type=ROOM_TYPES[index % len(ROOM_TYPES)],
                           status="vacant_clean", maintenance_notes=None, version=1)
    return system, {**doc, "action": "status_changed", "hotel_id": hotel, "event_id": _id()}


def customer_doc(hotel: str, index: int) -> tuple[System, dict[str, Any]]:
    system, doc = _sample()(EventKind.CUSTOMER, f"{hotel}-C{index:06d}",
                           email=f"guest{index}@example.com", updated_fields=[], version=1)
    return system, {**doc, "action": "created", "hotel_id": hotel, "event_id": _id()}


def stay_docs(hotel: str, index: int, rooms: int) -> list[tuple[System, dict[str, Any]]]:
    """A booking, its check-in and its check-out, in room `index % rooms` (of its type)."""
    sample = _sample()
    reservation = f"{hotel}-R{index:06d}"
    # Every type arrives every day, spread over 60 days: within what the rooms can hold.
    arrive = FIRST_NIGHT + timedelta(days=(index // len(ROOM_TYPES)) % 60)
    leave = arrive + timedelta(days=1 + index % 3)
    number = index % (rooms - rooms % len(ROOM_TYPES) or rooms)
    room = {"room_id": f"{hotel}-RM{number:05d}", "room_number": str(1000 + number)}
    saas, booking = sample(EventKind.RESERVATION, reservation,
                           room_type=ROOM_TYPES[index % len(ROOM_TYPES)],
                           room_number=room["room_number"], checkin_date=arrive.isoformat(),
                           checkout_date=leave.isoformat())
    pms, checkout = sample(EventKind.CHECKIN_CHECKOUT, reservation, **room,
                           actual_checkin_time=f"{arrive}T15:00:00+09:00",
                           actual_checkout_time=f"{leave}T10:00:00+09:00")
    checkin = {**checkout, "action": "checked_in",
               "data": {**checkout["data"], "actual_checkout_time": None,
                        "additional_charges": None, "payment_status": "pending"}}
    return [(system, {**doc, "hotel_id": hotel, "event_id": _id()})
            for system, doc in ((saas, booking), (pms, checkin), (pms, checkout))]


def mixed(total: int, hotel: str) -> list[tuple[System, dict[str, Any]]]:
    """Rooms first, then customers, then every booking, every check-in, every check-out:
    about `total`. `publish` sends a chunk's events at once, so one stay's events go in
    different chunks, in their order."""
    rooms, customers = max(total // 40, 1), total // 5
    stays = max((total - rooms - customers) // 3, 1)
    events = [room_doc(hotel, i) for i in range(rooms)]
    events += [customer_doc(hotel, i) for i in range(customers)]
    each = [stay_docs(hotel, i, rooms) for i in range(stays)]
    for step in range(3):
        events += [stay[step] for stay in each]
    return events


async def publish(
    documents: Sequence[tuple[System, dict[str, Any]]], *, settings: HubSettings,
    registry: SchemaRegistryClient, chunk: int,
) -> tuple[set[str], float]:
    """Publish in order per system, `chunk` in flight; returns the event ids and the seconds."""
    publishers = {system: HotelEventPublisher(system=system, registry=registry, settings=settings)
                  for system in {system for system, _ in documents}}
    for publisher in publishers.values():
        await publisher.start()
    ids: set[str] = set()
    started = time.perf_counter()
    try:
        for batch in chunks(documents, chunk):
            # One entity's events are in one batch at most once per kind, and the
            # publisher keeps per-partition order for what it sends in sequence.
            published = await asyncio.gather(*(
                publishers[system].publish_document(document) for system, document in batch
            ))
            ids.update(str(item.event.event_id) for item in published)
    finally:
        for publisher in publishers.values():
            await publisher.stop()
    return ids, time.perf_counter() - started


# --- measurements --------------------------------------------------------------------


async def process_in_app(
    mixed_docs: Sequence[tuple[System, dict[str, Any]]],
    fill_docs: Sequence[tuple[System, dict[str, Any]]], *,
    settings: HubSettings, registry: SchemaRegistryClient, chunk: int, deadline: Deadline,
) -> dict[str, dict[str, Any]]:
    """The mixed stream is published first, then the app starts and is timed through it.

    The fill (customers and rooms for the restore) is published after that while the
    app runs, so its figure includes publishing: a lower bound, reported separately.
    """
    from streams.worker.run import running_hub

    results: dict[str, dict[str, Any]] = {}
    mixed_ids, publish_s = await publish(mixed_docs, settings=settings, registry=registry,
                                         chunk=chunk)
    sink = AgentSink(Progress(set(mixed_ids)))  # Progress empties the set it is given
    started = time.perf_counter()
    async with (asyncio.timeout(deadline.remaining_s() + 30),
                running_hub(settings, sinks=[sink])):
        await asyncio.wait_for(sink.progress.done.wait(), timeout=deadline.remaining_s())
        assert sink.progress.first_at is not None
        startup_s = sink.progress.first_at.wall_s - started
        results["mixed stream"] = _figures(len(mixed_ids), sink.progress.processed,
                                           sink.progress.rate(), publish_s,
                                           note="published before the app started")
        results["mixed stream"]["app start-up until first event (s)"] = round(startup_s, 2)
        log.warning("mixed stream: %s", results["mixed stream"])

        sink.progress = Progress({str(doc["event_id"]) for _, doc in fill_docs})
        fill_ids, fill_publish_s = await publish(fill_docs, settings=settings,
                                                 registry=registry, chunk=chunk)
        progress = sink.progress
        await asyncio.wait_for(progress.done.wait(), timeout=deadline.remaining_s())
        results["fill"] = _figures(len(fill_ids), progress.processed, progress.rate(),
                                   fill_publish_s, note="published while the app ran")
        log.warning("fill: %s", results["fill"])
    return results


def _figures(events: int, processed: int, rate: Rate, publish_s: float, *,
             note: str) -> dict[str, Any]:
    from prometheus_client import REGISTRY

    refused = {sample.labels["reason"]: int(sample.value) for metric in REGISTRY.collect()
               if metric.name == "hotelhub_refusals" for sample in metric.samples
               if sample.name == "hotelhub_refusals_total"}
    return {
        "refusals_so_far": sum(refused.values()),
        "refusals_by_reason": refused,
        "events": events, "records_processed": processed, "seconds": round(rate.seconds, 2),
        "events_per_s": round(events / rate.seconds, 1) if rate.seconds > 0 else None,
        "cpu_per_wall": round(rate.cpu_per_wall, 2), "publish_s": round(publish_s, 2),
        "note": note,
    }


@dataclass(frozen=True)
class Restore:
    seconds_to_recovery_complete: float
    seconds_restoring: float
    seconds_to_worker_ready: float | None
    seconds_to_hotel_state_restored: float | None
    """Until the hotel processor logged every partition ready (its state read back)."""
    recovery_log: list[str]


def worker_command() -> list[str]:
    """`hotelhub worker` without the CLI around it, with logging on so recovery can be timed."""
    return [sys.executable, "-c",
            "import logging\n"
            "logging.basicConfig(level=logging.INFO, "
            "format='%(asctime)s %(name)s %(levelname)s %(message)s')\n"
            "from streams.settings import get_settings\n"
            "from streams.worker.run import run_worker\n"
            "run_worker(get_settings(), loglevel='info')"]


def _stamp(line: str) -> float | None:
    match = _STAMP.match(line)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def time_restore(settings: HubSettings, data_dir: Path, *, timeout_s: float) -> Restore:
    """Start a fresh worker process and read its log until "Recovery complete"; then stop it."""
    log_path = data_dir / "restore-worker.log"
    env = {**os.environ, "HOTELHUB_WORKER_DATA_DIR": str(data_dir / "restore"),
           "HOTELHUB_WEB_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as out:
        spawned = time.time()
        process = subprocess.Popen(worker_command(), env=env, cwd=REPO_ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        end = time.monotonic() + timeout_s
        began = complete = ready = hotels = None
        while time.monotonic() < end and (ready is None or hotels is None):
            if process.poll() is not None:
                raise RuntimeError(f"worker exited ({process.returncode}); see {log_path}")
            for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
                if began is None and "Highwater for active changelog partitions" in line:
                    began = _stamp(line)
                elif complete is None and "Recovery complete" in line:
                    complete = _stamp(line)
                elif complete is not None and ready is None and "Worker ready" in line:
                    ready = _stamp(line)
            readies = [_stamp(line) for line in
                       log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                       if "hotel partition" in line and "states restored" in line]
            if hotels is None and len(readies) >= settings.topic_partitions:
                hotels = max(stamp for stamp in readies if stamp is not None)
            time.sleep(0.2)
        if complete is None or began is None:
            raise TimeoutError(f"no 'Recovery complete' within {timeout_s:g} s; see {log_path}")
        text = log_path.read_text(encoding="utf-8", errors="replace")
        start = text.find("Highwater for active changelog partitions")
        lines = [line[:200] for line in text[start:].splitlines()][:120]
        return Restore(round(complete - spawned, 3), round(complete - began, 3),
                       None if ready is None else round(ready - spawned, 3),
                       None if hotels is None else round(hotels - spawned, 3), lines)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


# --- report --------------------------------------------------------------------------


def markdown(document: dict[str, Any]) -> str:
    rows = ["| metric | value |", "|---|---:|"]
    for name, figures in document["throughput"].items():
        rows.append(f"| {name}: events/s through the state agents (1 worker, in process; "
                    f"{figures['note']}) | {figures['events_per_s']:,.0f} |")
        rows.append(f"| {name}: events / records processed (incl. derived room events) "
                    f"| {figures['events']:,} / {figures['records_processed']:,} |")
        rows.append(f"| {name}: refusals so far (a fair run provokes none) "
                    f"| {figures['refusals_so_far']:,} |")
    restore = document["restore"]
    rows += [
        f"| restore: fresh worker start -> Recovery complete (s) "
        f"| {restore['seconds_to_recovery_complete']:.1f} |",
        f"| restore: Highwater logged -> Recovery complete (s) "
        f"| {restore['seconds_restoring']:.2f} |",
        f"| restore: fresh worker start -> hotel processor state restored (s) "
        f"| {restore['seconds_to_hotel_state_restored']} |",
        f"| restore: changelog records (all tables) "
        f"| {sum(document['changelog_records'].values()):,} |",
    ]
    rows += [f"| changelog records: {table} | {count:,} |"
             for table, count in document["changelog_records"].items()]
    rows.append("")
    rows += [f"- {name}: {value}" for name, value in document["environment"].items()]
    return "\n".join(rows)


async def run(options: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    deadline = Deadline(options.timeout_s)
    settings = configure(data_dir)
    from streams.worker.run import prepare  # only now, after the settings are in place

    await asyncio.wait_for(prepare(settings), timeout=deadline.remaining_s())
    try:
        async with SchemaRegistryClient(settings.registry_url) as registry:
            fill = [room_doc("BENCH-FILL", i) for i in range(options.rooms)]
            fill += [customer_doc("BENCH-FILL", i) for i in range(options.customers)]
            throughput = await process_in_app(
                mixed(options.events, "BENCH-MIX"), fill,
                settings=settings, registry=registry, chunk=options.chunk, deadline=deadline,
            )
        changelogs = {table: f"{settings.app_id}-{table}-changelog" for table in TABLES}
        counts = await record_counts(settings, list(changelogs.values()))
        log.warning("changelog records: %s; starting a fresh worker to restore", counts)
        restore = await asyncio.to_thread(time_restore, settings, data_dir,
                                          timeout_s=deadline.remaining_s())
    finally:
        with contextlib.suppress(Exception):
            await drop_run_topics(settings)
    return {
        "throughput": throughput,
        "restore": restore.__dict__,
        "changelog_records": {table: counts[name] for table, name in changelogs.items()},
        "environment": {
            "processing_guarantee": settings.processing_guarantee,
            "topic partitions": settings.topic_partitions,
            "CPU count": os.cpu_count(),
            "Kafka": f"{settings.kafka_version} (from settings) at {settings.bootstrap_servers}",
            "Python": platform.python_version(),
            "platform": platform.platform(),
            "run at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="mixed stream size")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=5_000)
    parser.add_argument("--chunk", type=int, default=500, help="sends in flight at once")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="budget for the run")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from bench.common import _watchdog

    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    _watchdog(options.timeout_s + 60)
    with tempfile.TemporaryDirectory(prefix="hotelhub-bench-state-") as data_dir:
        document = asyncio.run(run(options, Path(data_dir)))
    print()
    print(markdown(document))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(document, indent=2, default=str) + "\n",
                              encoding="utf-8")
    print(f"\nJSON written to {options.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
