"""The Event Storage sink: every record of the hub's topics into PostgreSQL, once.

A consumer group of its own (`settings.storage_group`) reads the event topics, refusals,
delivery log and both dead-letter topics read_committed, turns each record into a row
(`streams.storage.records`) and writes each poll as one batch (`EventWriter`). Offsets are
committed only after PostgreSQL committed the batch: a crash in between redelivers the
batch, and the rows' ids make the second write insert nothing. So the storage holds every
record exactly once, at least once delivered.

Scale-out is the consumer group's: start more sinks and the partitions are shared. A
replay (`replay=True`) reads the topics from the start to where they end now without a
group, for a backfill or a new database; it inserts only what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.core.exceptions import CodecError
from streams.core.kinds import (
    CONTRACT_TOPICS,
    DEADLETTER_TOPIC,
    DELIVERY_LOG_TOPIC,
    POLICIES,
    REFUSAL_TOPIC,
    WEBHOOK_DEADLETTER_TOPIC,
)
from streams.ops.metrics import storage_batch_seconds, storage_records_total
from streams.runners.admin import partition_counts
from streams.settings import HubSettings
from streams.storage.database import StorageError, connect_blocking
from streams.storage.partitions import drop_expired
from streams.storage.records import (
    STORED_TOPICS,
    Coordinates,
    StoredRecord,
    dead_letter_row,
    delivery_row,
    event_row,
    refusal_row,
    undecodable_row,
    webhook_dead_letter_row,
)
from streams.storage.schema import migrate
from streams.storage.writer import EventWriter
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient

log = logging.getLogger(__name__)

KIND_BY_TOPIC = {policy.topic: kind for kind, policy in POLICIES.items()}
CONTRACT_OF_TOPIC = {topic: contract for contract, topic in CONTRACT_TOPICS.items()}
RETENTION_CHECK_S = 3600.0
T = TypeVar("T")
WRITE_ATTEMPTS = 5
YOUNG_COLLECTION_EVERY = 50_000
"""Allocations between collections of the youngest generation in a sink's own process."""


def quiet_collector() -> None:
    """Tune the garbage collector for a process that is a sink and nothing else (`hotelhub
    storage sink|replay`, bench.storage_sink): a batch allocates tens of thousands of
    short-lived objects, which the default threshold (700) has the collector scan over and
    over, with everything loaded at start-up (frozen here) each time: 5 us of 65 per record
    (bench.storage_sink). Not for a process shared with other work (the demo)."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 100)


@dataclass
class InFlight:
    """A batch being written, and the consumer's positions right after it was polled."""

    write: asyncio.Future[int]
    rows: list[StoredRecord]
    positions: dict[TopicPartition, int]
    began: float


@dataclass
class SinkStats:
    read: int = 0
    inserted: int = 0
    batches: int = 0
    seconds: float = 0.0
    """From start (schema checked, clients connecting) to stop."""
    streaming_seconds: float = 0.0
    """From the first batch polled to the last one committed: the steady rate's clock."""

    @property
    def duplicates(self) -> int:
        return self.read - self.inserted


class EventSink:
    """Reads the hub's topics into the Event Storage until stopped (or, replaying, until
    the end the topics had when it started)."""

    def __init__(self, settings: HubSettings, *, dsn: str | None = None,
                 topics: Sequence[str] = STORED_TOPICS, replay: bool = False,
                 writer: Callable[[psycopg.Connection], EventWriter] = EventWriter
                 ) -> None:
        unknown = set(topics) - set(STORED_TOPICS)
        if unknown:
            raise StorageError(
                f"not a topic the Event Storage keeps: {', '.join(sorted(unknown))} "
                f"(it keeps {', '.join(STORED_TOPICS)})")
        self.settings = settings
        self.dsn = dsn or settings.database_dsn()
        self.topics = list(topics)
        self.replay = replay
        self.writer = writer
        self.stats = SinkStats()
        self._stopping = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-storage")
        self._first_batch: float | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> SinkStats:
        await asyncio.to_thread(migrate, self.dsn)
        names = {self.settings.topic(topic): topic for topic in self.topics}
        consumer = AIOKafkaConsumer(
            *([] if self.replay else names),
            bootstrap_servers=self.settings.bootstrap_servers,
            **self.settings.kafka_auth(),
            group_id=None if self.replay else self.settings.storage_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        started = time.perf_counter()
        self._first_batch = None
        conn = await self._in_writer_thread(connect_blocking, self.dsn)
        try:
            async with SchemaRegistryClient.from_settings(self.settings) as registry:
                codec = ConfluentAvroCodec(registry)
                writer = self.writer(conn)
                await consumer.start()
                try:
                    ends = (await self._assign_for_replay(consumer, names) if self.replay
                            else None)
                    await self._loop(consumer, names, codec, writer, ends)
                finally:
                    await consumer.stop()
        finally:
            await self._in_writer_thread(conn.close)
            self._thread.shutdown(wait=False)
        self.stats.seconds = time.perf_counter() - started
        return self.stats

    async def _in_writer_thread(self, call: Callable[..., T], *args: Any) -> T:
        """Run a blocking database call in the writer's own thread (one at a time)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    async def _assign_for_replay(self, consumer: AIOKafkaConsumer, names: dict[str, str]
                                 ) -> dict[TopicPartition, int]:
        counts = await partition_counts(self.settings, set(names))
        missing = sorted(set(names) - set(counts))
        if missing:
            raise StorageError(f"no such topic to replay: {', '.join(missing)}")
        partitions = [TopicPartition(topic, p) for topic, n in sorted(counts.items())
                      for p in range(n)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return {tp: end for tp, end in ends.items() if end > 0}

    async def _loop(self, consumer: AIOKafkaConsumer, names: dict[str, str],
                    codec: ConfluentAvroCodec, writer: EventWriter,
                    ends: dict[TopicPartition, int] | None) -> None:
        """Poll, make rows, write. A batch is written while the next is polled and decoded
        (PostgreSQL works on its own core meanwhile); its offsets are committed once it is
        in, and never before."""
        next_retention = 0.0
        in_flight: InFlight | None = None
        try:
            while not self._stopping.is_set():
                if in_flight is None and not self.replay and time.monotonic() >= next_retention:
                    await self._drop_expired(writer)
                    next_retention = time.monotonic() + RETENTION_CHECK_S
                if ends is not None and await _reached(consumer, ends):
                    break
                fetched = await consumer.getmany(timeout_ms=500,
                                                 max_records=self.settings.storage_batch)
                records = [r for batch in fetched.values() for r in batch]
                began = time.perf_counter()
                if records and self._first_batch is None:
                    self._first_batch = began
                rows = [self._known_row(record, names, codec)
                        or await self._row_after_lookup(record, names, codec)
                        for record in records]
                positions = {tp: await consumer.position(tp) for tp in consumer.assignment()}
                if in_flight is not None:
                    await self._landed(consumer, in_flight)
                    in_flight = None
                if rows:
                    # Handed to the writer's thread now, not when this loop next yields.
                    in_flight = InFlight(
                        asyncio.get_running_loop().run_in_executor(
                            self._thread, self._write, writer, rows), rows, positions, began)
        finally:
            if in_flight is not None:
                await self._landed(consumer, in_flight)

    async def _landed(self, consumer: AIOKafkaConsumer, batch: InFlight) -> None:
        """Wait for a batch's write, count it, then commit the offsets after it."""
        inserted = await batch.write
        storage_batch_seconds.observe(time.perf_counter() - batch.began)
        self.stats.read += len(batch.rows)
        self.stats.inserted += inserted
        self.stats.batches += 1
        for record_type, count in Counter(r.record_type for r in batch.rows).items():
            storage_records_total.labels(record_type.value).inc(count)
        if not self.replay:
            await self._commit(consumer, batch.positions)
        if self._first_batch is not None:
            self.stats.streaming_seconds = time.perf_counter() - self._first_batch

    @staticmethod
    async def _commit(consumer: AIOKafkaConsumer, positions: dict[TopicPartition, int]) -> None:
        """Commit what the group still gives this sink. A sink joining or leaving the group
        moves partitions while a batch is written: the new owner reads the moved ones again
        from their last commit, and the rows' ids make that insert nothing."""
        assigned = consumer.assignment()
        kept = {tp: offset for tp, offset in positions.items() if tp in assigned}
        if not kept:
            return
        try:
            await consumer.commit(kept)
        except (CommitFailedError, IllegalStateError) as exc:  # the group rebalanced meanwhile
            log.info("Event Storage sink: offsets not committed, the group rebalanced: %s", exc)

    async def _row_after_lookup(self, record: ConsumerRecord, names: dict[str, str],
                                codec: ConfluentAvroCodec) -> StoredRecord:
        """The row of a record whose writer schema `_known_row` did not know: the registry
        is asked once, then every later record of that schema takes the path without it."""
        topic = names.get(record.topic, record.topic)
        try:
            await codec.decode_record(CONTRACT_OF_TOPIC[topic], record.value)
        except CodecError as exc:
            return undecodable_row(record.value, self._at(record, topic), str(exc))
        found = self._known_row(record, names, codec)
        assert found is not None  # the writer schema is known now
        return found

    @staticmethod
    def _at(record: ConsumerRecord, topic: str) -> Coordinates:
        return Coordinates(topic, record.partition, record.offset, record.timestamp,
                           record.headers or ())

    def _known_row(self, record: ConsumerRecord, names: dict[str, str],
                   codec: ConfluentAvroCodec) -> StoredRecord | None:
        """The row without awaiting anything; None when the registry must be asked first."""
        topic = names.get(record.topic, record.topic)
        at = self._at(record, topic)
        if topic == DEADLETTER_TOPIC:
            return dead_letter_row(record.key, record.value, at)
        if topic == WEBHOOK_DEADLETTER_TOPIC:
            return webhook_dead_letter_row(record.value, at)
        if record.value is None:
            return undecodable_row(None, at, "a record without a value (a tombstone)")
        try:
            decoded = codec.decode_known_record(CONTRACT_OF_TOPIC[topic], record.value)
        except CodecError as exc:
            return undecodable_row(record.value, at, str(exc))
        if decoded is None:
            return None
        if topic == REFUSAL_TOPIC:
            return refusal_row(decoded, at)
        if topic == DELIVERY_LOG_TOPIC:
            return delivery_row(decoded, at)
        return event_row(KIND_BY_TOPIC[topic], decoded, at)

    def _write(self, writer: EventWriter, rows: list[StoredRecord]) -> int:
        """Write a batch in the writer's thread, reconnecting on a lost connection; the
        batch's offsets are committed only after this returns."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return writer.write(rows)
            except psycopg.OperationalError as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise StorageError(
                        f"the Event Storage did not take a batch of {len(rows)} after "
                        f"{attempt} attempts: {exc}") from exc
                log.warning("Event Storage write failed (attempt %d): %s", attempt, exc)
                time.sleep(min(0.5 * 2 ** attempt, 10))
                with contextlib.suppress(psycopg.Error):
                    writer.conn.close()
                with contextlib.suppress(StorageError):
                    writer.use(connect_blocking(self.dsn))
        raise AssertionError("unreachable")

    async def _drop_expired(self, writer: EventWriter) -> None:
        dropped = await self._in_writer_thread(
            lambda: drop_expired(writer.conn, keep_months=self.settings.storage_retention_months,
                                 today=datetime.now(UTC).date()))
        if dropped:
            log.info("Event Storage retention: dropped %s", ", ".join(dropped))
            writer.forget_partitions()


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
