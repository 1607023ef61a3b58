"""Events/s of a mixed hotel stream through every agent, on a backlog and while publishing.

1. backlog: a mixed stream of rooms, customers, bookings, check-ins and check-outs is
   published first, then the hub runs in this process under a new app id and an agent
   sink times it from the first processed event to the last published one;
2. fill: 100k customer `created` and 5k room events published while the hub runs (a
   lower bound that includes publishing).

How long a restarted worker takes to serve these again is `bench.restore`'s. Run with
`python -m bench.state`. Everything goes to topics of this run's own
(`HOTELHUB_TOPIC_PREFIX=bench-state-<id>.`), deleted at the end with the app's changelogs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    HUB,
    AgentSink,
    Deadline,
    Progress,
    Rate,
    check_loopback,
    chunks,
    drop_run_topics,
    free_port,
    grant_run,
    watchdog,
)
from streams.core.kinds import EventKind, System
from streams.runners.hotel_processor import HotelProcessor
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings, get_settings
from streams.wire.registry_client import SchemaRegistryClient

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "state.json"
ROOM_TYPES = ("DBL", "TWN", "SGL", "STE")
FIRST_NIGHT = date(2026, 11, 23)

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
        "HOTELHUB_IDENTITY": HUB,  # the hub; its publishers act as their systems
    })
    get_settings.cache_clear()
    settings = get_settings()
    check_loopback(settings)
    grant_run(settings)  # removed with the topics (drop_run_topics)
    return settings


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
    # The clock starts when the processor has its partitions and their state, as in
    # bench.stay: a backlog is decided in rounds of thousands, so "first event decided"
    # would start it after the first round.
    assign = HotelProcessor.assign

    async def assigned(self: HotelProcessor, partitions: Any) -> None:
        await assign(self, partitions)
        sink.progress.ready()

    HotelProcessor.assign = assigned  # type: ignore[method-assign]
    started = time.perf_counter()
    async with (asyncio.timeout(deadline.remaining_s() + 30),
                running_hub(settings, sinks=[sink])):
        await asyncio.wait_for(sink.progress.done.wait(), timeout=deadline.remaining_s())
        HotelProcessor.assign = assign  # type: ignore[method-assign]
        assert sink.progress.ready_at is not None
        startup_s = sink.progress.ready_at.wall_s - started
        results["mixed stream"] = _figures(len(mixed_ids), sink.progress.processed,
                                           sink.progress.rate(), publish_s,
                                           note="published before the app started")
        results["mixed stream"]["start-up until the processor is ready (s)"] = round(
            startup_s, 2)
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
    finally:
        await drop_run_topics(settings)
    return {
        "throughput": throughput,
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
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    watchdog(options.timeout_s + 60)
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
