"""Stay path: the hub's hotel processor against a bare transactional aiokafka loop.

Each run publishes one room to the run's own topics, and each side decides it (not
timed); then `--events` bookings of it (distinct reservation ids, an overbooking
allowance: nothing may be refused), not timed either. Both sides then process those same
records, going on from where they stopped (the hub: a new processor in the same group,
its state restored from its log), with the same topology, order alternating:

- hub: `streams.runners.hotel_processor.HotelProcessor` (a consumer group, one
  transactional producer per partition): each record's signature is verified and it is
  re-keyed by its `ce_hotelid` header to its hotel's partition of `<app>.hotel-events`;
  there it is decoded, checked against its verified producer (`refuse_unverified`),
  `streams.core.step.apply_event` decides it, its report facts go to `<app>.report-facts`
  and each state the round changed goes once to the compacted `<app>.hotel-state`, in the
  transaction that commits the offsets;
- raw: one `AIOKafkaConsumer` (no group; read_committed), one transactional
  `AIOKafkaProducer` per partition: the same two hops (verify the record's signature with
  `streams.wire.signing.Verifier` and re-key by the `ce_hotelid` header and
  `hotel_partition`; fastavro + pydantic decode, the same origin check
  (`refuse_unverified`) and `apply_event`, each report fact the step made and each changed
  state's JSON once per transaction to topics of its own, offsets in the same transaction),
  records of a partition in the order they were produced, and the partition produced
  first first (as the hub).

Both sides connect as `hotel-hub` (the raw loop stands in for the hub's processor: its
topics, group and transactional ids are named under the run's app id, which the hub's
grants cover); the publishers as their systems, and they sign every record.

Each side is timed from the moment it is ready to read (the hub: its partitions assigned
and their state restored; raw: partitions assigned, producers started) to the last event
decided (its transaction committed); rate = events / that time. Run with
`python -m bench.stay`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.structs import ConsumerRecord

from bench.common import (
    AgentSink,
    Deadline,
    Progress,
    Rate,
    Side,
    admin,
    base_parser,
    check_options,
    documents,
    drop_run_topics,
    environment,
    main_loop,
    rate_table,
    refusals_and_dead_letters,
    report,
    room_document,
    run_settings,
    side_json,
)
from schemas import schema_text
from streams.core.kinds import POLICIES, EventKind, System
from streams.core.models import EVENT_MODELS
from streams.core.rules import Principal
from streams.core.step import apply_event, refuse_unverified
from streams.runners.hotel_processor import HotelProcessor
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.partitioning import hotel_partition
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.signing import HUB_SET, PRINCIPAL_HEADER, UNVERIFIED_HEADER, Verifier

KINDS = (EventKind.ROOM, EventKind.RESERVATION)
SOURCE = "raw.source"
SIDES = {
    "hub": "HotelProcessor: verify the signature, re-key by the ce_hotelid header to "
           "<app>.hotel-events, decode (codec), origin check, apply_event, its report facts "
           "and each changed state once per round to the compacted log, offsets in the "
           "transaction; one "
           "transactional producer per partition",
    "raw": "AIOKafkaConsumer + one transactional AIOKafkaProducer per partition: the same two "
           "hops (verify the signature, re-key by header; fastavro + pydantic), origin check, "
           "apply_event, its report facts and each changed state once per transaction to "
           "topics of its own, offsets in the transaction",
}


async def publish(settings: HubSettings, documents: list[dict[str, Any]],
                  system: System) -> set[str]:
    async with SchemaRegistryClient(settings.registry_url) as registry:
        outcomes = []
        async with HotelEventPublisher(system=system, registry=registry,
                                       settings=settings) as pub:
            for start in range(0, len(documents), 1000):
                outcomes += await pub.publish_many(documents[start:start + 1000])
    problems = [outcome.problem for outcome in outcomes if not outcome.ok]
    if problems:
        raise SystemExit(f"publishing the bench records failed: {problems[:3]}")
    return {str(outcome.event.event_id) for outcome in outcomes if outcome.event}


async def hub_side(settings: HubSettings, wanted: set[str], deadline: Deadline
                   ) -> tuple[Rate, float]:
    sink = AgentSink(Progress(set(wanted)))
    async with SchemaRegistryClient(settings.registry_url) as registry:
        processor = HotelProcessor(settings, ConfluentAvroCodec(registry), settings.rules())
        processor.add_sink(sink)
        assign = processor.assign

        async def assigned(partitions: Any) -> None:
            """The clock starts once the processor has its partitions and their state."""
            await assign(partitions)
            sink.progress.ready()

        processor.assign = assigned  # type: ignore[method-assign]
        started = time.perf_counter()
        await asyncio.wait_for(processor.start(), timeout=deadline.remaining_s())
        try:
            await asyncio.wait_for(sink.progress.done.wait(), timeout=deadline.remaining_s())
        finally:
            await asyncio.wait_for(processor.stop(), timeout=60)
    if processor.failure is not None:
        raise SystemExit(f"the hotel processor failed: {processor.failure!r}")
    assert sink.progress.ready_at is not None
    return sink.progress.rate(), sink.progress.ready_at.wall_s - started


class RawLoop:
    """The consume-transform-produce loop a bare client would write for the same rules."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.partitions = settings.topic_partitions
        # Under the app id, as the hub's own: the hub's identity may use them (its grants).
        self.group = f"{settings.app_id}-raw"
        self.rekeyed, self.states_topic = f"{self.group}.hotel-events", f"{self.group}.state"
        self.facts_topic = f"{self.group}.report-facts"
        self.sources = {settings.topic(POLICIES[kind].topic): kind for kind in KINDS}
        self.verifier = Verifier.of(settings)
        """Checks each record's signature where it enters, as the hub's intake (one HMAC)."""
        self.schemas = {kind: fastavro.parse_schema(json.loads(schema_text(kind)))
                        for kind in KINDS}
        self.rules = settings.rules()
        self.states: dict[tuple[str, bytes], Any] = {}
        self.refusals: Counter[str] = Counter()
        self.progress = Progress(set())
        self.positions: dict[TopicPartition, int] = {}
        """Where the next run goes on (the offsets its transactions committed)."""

    async def create_topics(self) -> None:
        client = await admin(self.settings)
        try:
            await client.create_topics([
                NewTopic(self.rekeyed, self.partitions, 1),
                NewTopic(self.states_topic, self.partitions, 1,
                         topic_configs={"cleanup.policy": "compact"}),
                NewTopic(self.facts_topic, self.partitions, 1)])
        finally:
            await client.close()

    def decode(self, kind: EventKind, value: bytes) -> Any:
        record = fastavro.schemaless_reader(io.BytesIO(value[5:]), self.schemas[kind])
        return EVENT_MODELS[kind].model_validate(record)

    async def run(self, deadline: Deadline, wanted: set[str]) -> Rate:
        self.progress = Progress(set(wanted))
        if not self.positions:
            await self.create_topics()
        servers, auth = self.settings.bootstrap_servers, self.settings.kafka_auth()
        consumer = AIOKafkaConsumer(bootstrap_servers=servers, **auth, group_id=None,
                                    enable_auto_commit=False, isolation_level="read_committed",
                                    max_partition_fetch_bytes=4 * 1024 * 1024)
        producers = [AIOKafkaProducer(bootstrap_servers=servers, **auth, acks="all", linger_ms=5,
                                      enable_idempotence=True,
                                      transactional_id=f"{self.group}-{partition}")
                     for partition in range(self.partitions)]
        await consumer.start()
        try:
            for producer in producers:
                await producer.start()
            consumer.assign([TopicPartition(topic, p) for topic in [*self.sources, self.rekeyed]
                             for p in range(self.partitions)])
            await consumer.seek_to_beginning()
            for tp, offset in self.positions.items():
                consumer.seek(tp, offset)
            self.progress.ready()
            async with asyncio.timeout(deadline.remaining_s()):
                while not self.progress.done.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                    by_partition: dict[int, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
                    for tp, records in batches.items():
                        by_partition[tp.partition].extend(records)
                    for records in by_partition.values():
                        records.sort(key=lambda record: record.timestamp)
                    # As the hub: the partition whose records were produced first goes first,
                    # so the room is decided before the bookings of its type.
                    for partition, records in sorted(by_partition.items(),
                                                     key=lambda item: item[1][0].timestamp):
                        await self.transaction(producers[partition], partition, records)
        finally:
            for producer in producers:
                await producer.stop()
            await consumer.stop()
        return self.progress.rate()

    def principal(self, found: dict[str, bytes], event: Any) -> Principal:
        """Who signed the record, as the first hop verified it (the hub's `_principal`)."""
        if self.verifier is None:
            return Principal(event.updated_by_system)
        name, problem = found.get(PRINCIPAL_HEADER), found.get(UNVERIFIED_HEADER)
        return Principal(name.decode() if name else None,
                         problem.decode() if problem else "no principal header")

    async def transaction(self, producer: AIOKafkaProducer, partition: int,
                          records: list[ConsumerRecord[bytes, bytes]]) -> None:
        overlay: dict[tuple[str, bytes], Any] = {}
        decided = []
        offsets: dict[TopicPartition, int] = {}

        def read(tag: str, key: bytes) -> Any:
            return overlay[tag, key] if (tag, key) in overlay else self.states.get((tag, key))

        async with producer.transaction():
            futures = []
            for record in records:
                offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
                value = record.value or b""
                if record.topic in self.sources:
                    # Verified, then re-keyed by the CloudEvents hotel header, as the hub
                    # does: no decode; who signed it travels in a header.
                    headers = [(name, data) for name, data in record.headers
                               if name not in HUB_SET]
                    if self.verifier is not None:
                        headers += self.verifier.verify(
                            POLICIES[self.sources[record.topic]].topic, record.key,
                            record.value, headers).headers()
                    hotel = dict(headers)["ce_hotelid"].decode()
                    futures.append(await producer.send(
                        self.rekeyed, value, key=record.key,
                        headers=[*headers, (SOURCE, record.topic.encode())],
                        partition=hotel_partition(hotel, self.partitions),
                        timestamp_ms=record.timestamp))
                    continue
                found = dict(record.headers)
                event = self.decode(self.sources[found[SOURCE].decode()], value)
                step = (refuse_unverified(event, self.principal(found, event))
                        or apply_event(event, read, self.rules))
                overlay.update(step.changes)
                self.refusals.update(refusal.reason_code.value for refusal in step.refusals)
                decided.append(str(step.event.event_id))
                # Each report fact the step made, in the transaction (as the hub).
                for fact in step.facts:
                    futures.append(await producer.send(
                        self.facts_topic, fact.model_dump_json().encode(),
                        key=f"{fact.hotel_id}:{fact.room_type}".encode(), partition=partition))
            # Each state the transaction changed, once, with its last value (as the hub).
            for (tag, key), state in overlay.items():
                futures.append(await producer.send(
                    self.states_topic, state.model_dump_json().encode(),
                    key=tag.encode() + b"|" + key, partition=partition))
            await asyncio.gather(*futures)
            await producer.send_offsets_to_transaction(offsets, self.group)
        self.states.update(overlay)
        self.positions.update(offsets)
        for event_id in decided:
            self.progress.saw(event_id)


async def one_run(number: int, options: argparse.Namespace, data_dir: Path,
                  sides: dict[str, Side], deadline: Deadline) -> dict[str, Any]:
    from streams.worker.run import prepare

    settings = run_settings("stay", number, data_dir)
    try:
        await prepare(settings)
        # The room first, decided by each side before the bookings exist: a booking read
        # before its room type's first room waits (at most 100 per hotel), then is refused.
        room = await publish(settings, [room_document()[1]], room_document()[0])
        raw = RawLoop(settings)
        await hub_side(settings, room, deadline)
        await raw.run(deadline, room)
        system, bookings = documents(EventKind.RESERVATION, options.events,
                                     side=f"STAY-{number}")
        wanted = await publish(settings, bookings, system)
        checks: dict[str, Any] = {"order": ["hub", "raw"] if number % 2 == 0 else ["raw", "hub"]}
        for name in checks["order"]:
            if name == "hub":
                rate, startup_s = await hub_side(settings, wanted, deadline)
                checks["hub start-up until ready (s)"] = round(startup_s, 2)
            else:
                rate = await raw.run(deadline, wanted)
            sides[name].runs.append(rate)
            checks[f"{name} events decided"] = rate.events
        checks["raw refusals"] = sum(raw.refusals.values())
        if raw.refusals:
            checks["raw refusals by reason"] = dict(raw.refusals)
        checks.update({f"hub {name}": count
                       for name, count in (await refusals_and_dead_letters(settings)).items()})
        return checks
    finally:
        await drop_run_topics(settings)


async def run(options: argparse.Namespace) -> None:
    deadline = Deadline(options.timeout_s)
    sides = {name: Side(name, does) for name, does in SIDES.items()}
    checks = []
    with tempfile.TemporaryDirectory(prefix="hotelhub-bench-") as data_dir:
        for number in range(options.runs):
            checks.append(await one_run(number, options, Path(data_dir), sides, deadline))
            print(f"run {number + 1}: " + ", ".join(
                f"{side.name} {side.runs[-1].per_s:,.0f}/s" for side in sides.values())
                + f"; {checks[-1]}", flush=True)
    from streams.settings import get_settings

    env = environment(get_settings(), options)
    report("stay", rate_table(list(sides.values())), env,
           {"sides": {name: side_json(side) for name, side in sides.items()}, "checks": checks},
           options.output)
    unfair = [check for check in checks
              if check["hub refusals"] or check["hub dead letters"] or check["raw refusals"]]
    if unfair:
        raise SystemExit(f"unfair run (refusals or dead letters): {unfair}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__, events=20_000, timeout_s=900)
    options = parser.parse_args(argv)
    check_options(parser, options)
    main_loop(lambda: run(options), timeout_s=options.timeout_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
