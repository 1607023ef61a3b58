"""Throughput of the hub's spine against bare aiokafka + fastavro, on one broker in one run.

The hub does real work per event: it validates, enriches, encodes and sends in
`HotelEventPublisher`, and it decodes and validates in the Faust agents. This
benchmark shows what that work costs. It runs the same events through the hub
and through a bare client, in the same process, against the same broker.

Run with `python -m bench.throughput` (or `python bench/throughput.py`). The
events go to topics of its own (`bench.hotel.*`). These have the same
partitions and configuration as the hub topics, and they are emptied at the
start and at the end of a run. The hub's dev topics, and every test that reads
them from earliest, are not touched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import ipaddress
import json
import logging
import os
import platform
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import fastavro
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from schemas import schema_text
from streams.core.kinds import POLICIES, EventKind, System
from streams.core.models import HotelEvent, record_key
from streams.runners.publisher import HotelEventPublisher, build_event
from streams.settings import HubSettings, get_settings
from streams.wire.cloudevents import headers_for
from streams.wire.codec import ConfluentAvroCodec, parse_schema
from streams.wire.registry_client import SchemaRegistryClient

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "throughput.json"
TOPIC_PREFIX = "bench."
KIND = EventKind.RESERVATION
HEADER_SIZE = 5
"""Confluent framing: magic byte and a 4-byte schema id before the Avro body."""
_HEADER = struct.Struct(">bI")

log = logging.getLogger("bench.throughput")
T = TypeVar("T")


# --- run set-up ----------------------------------------------------------------------


class Deadline:
    """One time budget for the run: each wait takes what is left, so everything ends by itself."""

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self._end = time.monotonic() + total_s

    def remaining_s(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the benchmark exceeded its {self.total_s:g} s budget")
        return left


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_loopback(settings: HubSettings) -> None:
    """Refuse anything but loopback for the broker and the registry: a benchmark floods them."""
    hosts = [server.strip().rsplit(":", 1)[0] for server in settings.bootstrap_servers.split(",")]
    hosts.append(urlsplit(settings.registry_url).hostname or "")
    remote = [host for host in hosts if not _is_loopback(host)]
    if remote:
        raise SystemExit(f"refusing to benchmark non-loopback hosts: {', '.join(remote)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def configure(data_dir: Path) -> HubSettings:
    """Give this run's Faust app its own consumer group, web port and data dir.

    This must run before `streams.worker.app` is imported, because the app reads the
    settings once at import.
    """
    assert "streams.worker.app" not in sys.modules, "app imported too early"
    os.environ.update({
        "HOTELHUB_APP_ID": f"hotelhub-bench-{uuid.uuid4().hex[:8]}",
        "HOTELHUB_WEB_PORT": str(free_port()),
        "HOTELHUB_WORKER_DATA_DIR": str(data_dir),
        # Topics of its own: the agents read them from the beginning, so the hub's
        # topics are neither flooded nor read.
        "HOTELHUB_TOPIC_PREFIX": TOPIC_PREFIX,
        # Every booking of the bench is for the same nights of one room type.
        "HOTELHUB_OVERBOOKING": '{"*": {"*": "100000000"}}',
    })
    get_settings.cache_clear()
    settings = get_settings()
    check_loopback(settings)
    return settings


def bench_partitions(settings: HubSettings) -> list[TopicPartition]:
    """Every partition the agents read. `ensure_topics` has already checked the counts."""
    return [
        TopicPartition(settings.topic(policy.topic), partition)
        for policy in POLICIES.values()
        for partition in range(settings.topic_partitions)
    ]


async def truncate(settings: HubSettings, partitions: Sequence[TopicPartition]) -> None:
    """Delete every record in the bench topics.

    After this, "from the beginning" means this run's records only, and nothing
    piles up on the broker.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(settings.connect_timeout_s * 1000),
    )
    await asyncio.wait_for(admin.start(), timeout=settings.connect_timeout_s)
    try:
        await asyncio.wait_for(
            admin.delete_records({tp: RecordsToDelete(before_offset=-1) for tp in partitions}),
            timeout=settings.publish_timeout_s,
        )
    finally:
        await admin.close()


async def drop_app_topics(settings: HubSettings) -> None:
    """Delete the internal topics that Faust created for this run's group. Best effort."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(settings.connect_timeout_s * 1000),
    )
    await asyncio.wait_for(admin.start(), timeout=settings.connect_timeout_s)
    try:
        names = await asyncio.wait_for(admin.list_topics(), timeout=settings.connect_timeout_s)
        ours = [name for name in names if name.startswith(f"{settings.app_id}-")]
        if ours:
            await asyncio.wait_for(admin.delete_topics(ours), timeout=settings.connect_timeout_s)
    finally:
        await admin.close()


# --- events --------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """An event as the publisher would send it, so the bare producer sends the same bytes."""

    event: HotelEvent
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def documents(count: int, *, side: str) -> tuple[System, list[dict[str, Any]]]:
    """`count` valid reservation documents from the test samples, for one side.

    Each document has its own reservation id, so the keys spread over all partitions, and
    the two sides book different stays: neither side's events make the other's refused.
    """
    if str(REPO_ROOT) not in sys.path:  # `python bench/throughput.py` puts bench/ first instead
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.events import sample

    system = sample(KIND)[0]
    return system, [sample(KIND, entity=f"BENCH-{side}-{index:07d}")[1]
                    for index in range(count)]


async def open_the_house(settings: HubSettings, registry: SchemaRegistryClient) -> None:
    """One room of the booked type: a booking for a type the hotel lacks is refused. The
    bench sets an overbooking allowance (`configure`) so every booking is applied."""
    from tests.support.events import sample

    system, room = sample(EventKind.ROOM, "BENCH-ROOM", room_type="DBL",
                          status="vacant_clean", maintenance_notes=None, version=1)
    async with HotelEventPublisher(system=system, registry=registry, settings=settings) as pub:
        await pub.publish_document({**room, "action": "status_changed"})


def prepare_events(
    docs: Iterable[dict[str, Any]], *, system: System, codec: ConfluentAvroCodec,
    settings: HubSettings,
) -> list[Prepared]:
    prepared = []
    for document in docs:
        event = build_event(document, publisher=system, default_hotel_id=settings.default_hotel_id)
        prepared.append(Prepared(
            event, settings.topic(POLICIES[KIND].topic), record_key(event), codec.encode(event),
            headers_for(event),
        ))
    return prepared


# --- measurements --------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """Wall time and the CPU time of this whole process (all threads) at one moment.

    CPU over wall shows whether the client was the bottleneck (close to 1: one
    core busy, held by the GIL) or was waiting for the broker.
    """

    wall_s: float
    cpu_s: float

    @classmethod
    def now(cls) -> Stamp:
        return cls(time.perf_counter(), time.process_time())


@dataclass(frozen=True)
class Rate:
    events: int
    seconds: float
    cpu_s: float

    @classmethod
    def between(cls, events: int, start: Stamp, end: Stamp) -> Rate:
        return cls(events, end.wall_s - start.wall_s, end.cpu_s - start.cpu_s)

    @property
    def cpu_per_wall(self) -> float:
        return self.cpu_s / self.seconds if self.seconds > 0 else float("nan")

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def encode_in_process(
    docs: Sequence[dict[str, Any]], prepared: Sequence[Prepared], *, system: System,
    codec: ConfluentAvroCodec, settings: HubSettings,
) -> tuple[Rate, Rate]:
    """The hub's per-event work before the send, and fastavro alone on the same records.

    The broker is not involved. This shows how much of the produce gap is CPU
    spent in our own code.
    """
    started = Stamp.now()
    for document in docs:
        event = build_event(document, publisher=system, default_hotel_id=settings.default_hotel_id)
        codec.encode(event)
        record_key(event)
        headers_for(event)
    hub = Rate.between(len(docs), started, Stamp.now())

    schema = parse_schema(schema_text(KIND))
    records = [item.event.model_dump(mode="python") for item in prepared]
    header = _HEADER.pack(0, codec.schema_id(KIND))
    started = Stamp.now()
    for record in records:
        buffer = io.BytesIO()
        buffer.write(header)
        fastavro.schemaless_writer(buffer, schema, record)
        buffer.getvalue()
    return hub, Rate.between(len(records), started, Stamp.now())


async def decode_in_process(
    prepared: Sequence[Prepared], *, codec: ConfluentAvroCodec
) -> tuple[Rate, Rate]:
    """The agents' per-record work (decode and validate) against fastavro alone, with no broker."""
    started = Stamp.now()
    for item in prepared:
        await codec.decode(KIND, item.value)
    hub = Rate.between(len(prepared), started, Stamp.now())

    schema = parse_schema(schema_text(KIND))
    started = Stamp.now()
    for item in prepared:
        fastavro.schemaless_reader(io.BytesIO(item.value[HEADER_SIZE:]), schema)
    return hub, Rate.between(len(prepared), started, Stamp.now())


async def produce_with_hub(
    docs: Sequence[dict[str, Any]], *, system: System, registry: SchemaRegistryClient,
    settings: HubSettings, chunk: int,
) -> tuple[Rate, set[str]]:
    """Send every document with `publish_document`, `chunk` at a time, and wait for all acks."""
    async with HotelEventPublisher(system=system, registry=registry, settings=settings) as pub:
        event_ids: set[str] = set()
        started = Stamp.now()
        for batch in chunks(docs, chunk):
            published = await asyncio.gather(*(pub.publish_document(doc) for doc in batch))
            event_ids.update(str(item.event.event_id) for item in published)
        finished = Stamp.now()
    return Rate.between(len(docs), started, finished), event_ids


async def produce_raw(prepared: Sequence[Prepared], *, settings: HubSettings, chunk: int) -> Rate:
    """Send the pre-encoded records with the publisher's producer settings, `chunk` at a time."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="hotelhub-bench-raw",
        acks="all",
        enable_idempotence=True,
        linger_ms=2,  # as HotelEventPublisher, so only the per-event work differs
        request_timeout_ms=int(settings.publish_timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(producer.start(), timeout=settings.connect_timeout_s)
        started = Stamp.now()
        for batch in chunks(prepared, chunk):
            await asyncio.gather(*(
                producer.send_and_wait(item.topic, item.value, key=item.key, headers=item.headers)
                for item in batch
            ))
        return Rate.between(len(prepared), started, Stamp.now())
    finally:
        await producer.stop()


@dataclass
class Progress:
    """Records processed, from the first one until every wanted event has been seen.

    The agent sink and the bare loop both use it, so both are timed the same way.
    """

    wanted: set[str]
    processed: int = 0
    first_at: Stamp | None = None
    done_at: Stamp | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def saw(self, event_id: str) -> None:
        self.processed += 1
        if self.first_at is None:
            self.first_at = Stamp.now()
        self.wanted.discard(event_id)
        if not self.wanted and self.done_at is None:
            self.done_at = Stamp.now()
            self.done.set()

    def rate(self) -> Rate:
        """(records - 1) / (last - first): the first record starts the clock, uncounted."""
        assert self.first_at is not None and self.done_at is not None
        return Rate.between(self.processed - 1, self.first_at, self.done_at)


class AgentSink:
    """A Faust agent sink that records each event an agent yields (after decode and validation)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    async def __call__(self, event: HotelEvent) -> None:
        self.progress.saw(str(event.event_id))


async def consume_raw(
    wanted: set[str], *, settings: HubSettings, deadline: Deadline
) -> tuple[Rate, int]:
    """Read the bench partitions from the beginning with aiokafka and decode each record.

    Each value is decoded with fastavro: the schema is parsed once, the
    Confluent header is skipped, and there is no validation.
    """
    readers = {settings.topic(POLICIES[kind].topic): parse_schema(schema_text(kind))
               for kind in EventKind}
    progress = Progress(set(wanted))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="hotelhub-bench-raw",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout=settings.connect_timeout_s)
        consumer.assign(bench_partitions(settings))
        await asyncio.wait_for(consumer.seek_to_beginning(), timeout=settings.connect_timeout_s)
        async with asyncio.timeout(deadline.remaining_s()):
            while not progress.done.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    schema = readers[tp.topic]
                    for record in records:
                        assert record.value is not None
                        body = io.BytesIO(memoryview(record.value)[HEADER_SIZE:])
                        decoded = fastavro.schemaless_reader(body, schema)
                        assert isinstance(decoded, dict)
                        progress.saw(str(decoded["event_id"]))
    finally:
        await consumer.stop()
    return progress.rate(), progress.processed


async def consume_with_app(
    wanted: set[str], *, deadline: Deadline, stop_grace_s: float = 20.0
) -> tuple[Rate, int, float]:
    """Start the real app with every agent, under a new group, and wait for every wanted event.

    Returns the rate, the number of records processed, and the start-up time
    (from start until the first processed record). The start-up time is not
    part of the rate.
    """
    from agents import EVENT_AGENTS
    from streams.worker.run import running_app

    progress = Progress(set(wanted))
    sink = AgentSink(progress)
    for agent in EVENT_AGENTS:
        agent.add_sink(sink)
    started = Stamp.now()
    # The outer bound also covers app.stop(); the inner one covers the wait.
    async with asyncio.timeout(deadline.remaining_s() + stop_grace_s), running_app():
        await asyncio.wait_for(progress.done.wait(), timeout=deadline.remaining_s())
    assert progress.first_at is not None
    return progress.rate(), progress.processed, progress.first_at.wall_s - started.wall_s


# --- report --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    metric: str
    hub: Rate
    raw: Rate

    @property
    def ratio(self) -> float:
        return self.hub.per_s / self.raw.per_s


def markdown(rows: Sequence[Row], environment: dict[str, Any]) -> str:
    lines = ["| metric | hub | raw | hub/raw |", "|---|---:|---:|---:|"]
    lines += [
        f"| {row.metric} | {row.hub.per_s:,.0f} | {row.raw.per_s:,.0f} | {row.ratio:.2f} |"
        for row in rows
    ]
    lines += [
        "",
        "Client process CPU time / wall time in the same windows "
        "(1.0 = one core busy in this process; the broker's CPU is not counted):",
        "",
        "| window | hub | raw |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {row.key} | {row.hub.cpu_per_wall:.2f} | {row.raw.cpu_per_wall:.2f} |" for row in rows
    ]
    lines.append("")
    lines += [f"- {name}: {value}" for name, value in environment.items()]
    return "\n".join(lines)


TIMED = {
    "produce": (
        "From the first send to the last ack. Reservation events are sent 'chunk' at a time "
        "(asyncio.gather), acks=all, idempotent producer, linger_ms=2. Hub: "
        "HotelEventPublisher.publish_document (validate, enrich, Avro-encode, CloudEvents "
        "headers, send_and_wait). Raw: AIOKafkaProducer.send_and_wait of the same records, "
        "already encoded, with the same keys and headers. Connecting is not timed."
    ),
    "consume": (
        "Both read every bench partition from the beginning and process the same records: "
        "all that this run produced (hub and raw, so 2 x events). Timed from the first "
        "processed record to the one that completes the set of this run's event ids; "
        "rate = (records - 1) / that time. Hub: the Faust app with all agents under a new "
        "consumer group (decode with the registry codec, pydantic validation, metrics, agent "
        "sink). Raw: AIOKafkaConsumer.getmany + fastavro.schemaless_reader (schema parsed "
        "once, 5-byte header skipped, no validation). App start-up and group join are not "
        "timed."
    ),
    "encode_cpu": (
        "In process, no broker. Hub: build_event + codec.encode + record_key + headers_for. "
        "Raw: fastavro.schemaless_writer of the same record dicts."
    ),
    "decode_cpu": (
        "In process, no broker. Hub: ConfluentAvroCodec.decode (Avro decode + pydantic "
        "model). Raw: fastavro.schemaless_reader."
    ),
}


def environment(settings: HubSettings, options: argparse.Namespace) -> dict[str, Any]:
    return {
        "events per producer": options.events,
        "event kind": f"{KIND.value} (tests.support.events.sample, one reservation id per event)",
        "sends in flight": options.chunk,
        "CPU count": os.cpu_count(),
        "Kafka": f"{settings.kafka_version} (from settings) at {settings.bootstrap_servers}",
        "topic partitions": settings.topic_partitions,
        "Python": platform.python_version(),
        "platform": platform.platform(),
    }


# --- main ----------------------------------------------------------------------------


async def run(options: argparse.Namespace, data_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    deadline = Deadline(options.timeout_s)
    settings = configure(data_dir)
    from streams.worker.run import prepare  # only now, after the settings are in place

    await asyncio.wait_for(prepare(settings), timeout=deadline.remaining_s())
    await truncate(settings, bench_partitions(settings))
    system, docs = documents(options.events, side="RAW")
    _, hub_docs = documents(options.events, side="HUB")
    extra: dict[str, Any] = {}
    try:
        async with SchemaRegistryClient(settings.registry_url) as registry:
            await open_the_house(settings, registry)
            codec = ConfluentAvroCodec(registry)
            await asyncio.wait_for(codec.register(KIND), timeout=deadline.remaining_s())
            prepared = prepare_events(docs, system=system, codec=codec, settings=settings)

            log.warning("in-process encode/decode of %d events", len(docs))
            encode_rates = encode_in_process(
                docs, prepared, system=system, codec=codec, settings=settings
            )
            decode_rates = await decode_in_process(prepared, codec=codec)

            log.warning("producing %d events raw, then %d with the hub", len(docs), len(docs))
            async with asyncio.timeout(deadline.remaining_s()):
                raw_produce = await produce_raw(prepared, settings=settings, chunk=options.chunk)
            async with asyncio.timeout(deadline.remaining_s()):
                hub_produce, hub_ids = await produce_with_hub(
                    hub_docs, system=system, registry=registry, settings=settings,
                    chunk=options.chunk,
                )
        wanted = hub_ids | {str(item.event.event_id) for item in prepared}

        log.warning("consuming %d records raw, then with the Faust app", len(wanted))
        raw_consume, raw_count = await consume_raw(wanted, settings=settings, deadline=deadline)
        hub_consume, hub_count, startup_s = await consume_with_app(wanted, deadline=deadline)
        from prometheus_client import REGISTRY

        extra = {
            "refusals by the hub (a fair run has none)": int(sum(
                sample.value for metric in REGISTRY.collect()
                if metric.name == "hotelhub_refusals" for sample in metric.samples
                if sample.name == "hotelhub_refusals_total")),
            "records read (raw loop)": raw_count,
            "records processed (hub agents)": hub_count,
            "app start-up until first record (s)": round(startup_s, 2),
        }
    finally:
        with contextlib.suppress(Exception):
            await truncate(settings, bench_partitions(settings))
        with contextlib.suppress(Exception):
            await drop_app_topics(settings)
    rows = [
        Row("produce", "produce, events/s (acks=all, idempotent)", hub_produce, raw_produce),
        Row("consume", "consume + decode, events/s", hub_consume, raw_consume),
        Row("encode_cpu", "in process: validate + encode, events/s (no broker)", *encode_rates),
        Row("decode_cpu", "in process: decode (+ validate), events/s (no broker)", *decode_rates),
    ]
    return rows, environment(settings, options) | extra


def write_json(rows: Sequence[Row], env: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Results are per machine.\n*.json\n", encoding="utf-8")
    document = {
        "environment": env,
        "results": {
            row.key: {
                "metric": row.metric,
                "hub_events_per_s": round(row.hub.per_s, 1),
                "raw_events_per_s": round(row.raw.per_s, 1),
                "hub_over_raw": round(row.ratio, 4),
                "hub": dataclasses.asdict(row.hub),
                "raw": dataclasses.asdict(row.raw),
                "timed": TIMED[row.key],
            }
            for row in rows
        },
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per producer")
    parser.add_argument("--chunk", type=int, default=500, help="sends in flight at once")
    parser.add_argument(
        "--timeout-s", type=float, default=180.0, help="budget for the whole run (seconds)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results file")
    options = parser.parse_args(argv)
    if options.events < 2 or options.chunk < 1 or options.timeout_s <= 0:
        parser.error("--events must be >= 2, --chunk >= 1 and --timeout-s > 0")
    return options


def _watchdog(after_s: float) -> None:
    """Last resort: if a client thread hangs on shutdown, end the process instead of leaving it."""

    def fire() -> None:
        print(f"bench: still running after {after_s:g} s; exiting", file=sys.stderr, flush=True)
        os._exit(3)

    timer = threading.Timer(after_s, fire)
    timer.daemon = True
    timer.start()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    _watchdog(options.timeout_s + 60)
    with tempfile.TemporaryDirectory(prefix="hotelhub-bench-") as data_dir:
        rows, env = asyncio.run(run(options, Path(data_dir)))
    print()
    print(markdown(rows, env))
    print()
    print("What is timed:")
    for key, text in TIMED.items():
        print(f"- {key}: {text}")
    write_json(rows, env, options.output)
    print(f"\nJSON written to {options.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
