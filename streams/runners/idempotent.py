"""A plain aiokafka loop for idempotent consumers: decode, validate, hand on; at-least-once.

For consumers whose effect a redelivery does not change (the analytics reports), so
neither transactions nor Faust's per-record machinery are needed (Faust cost ~300 us a
record against a decode of ~70 us):

- one consumer group of its own (`<app>-<name>`), read_committed, no auto-commit;
  `getmany` in batches of up to `FETCH_RECORDS`, the broker holding an empty fetch at
  most `FETCH_WAIT_MS`;
- each record is decoded into its kind's event model (`ConfluentAvroCodec.decode_known`,
  the registry asked only for a writer schema not seen yet) and handed to every sink in
  order, one partition's records in their order;
- a record that cannot be decoded (`CodecError`) goes to the dead-letter topic with the
  headers of `streams.wire.deadletters` (acknowledged before the loop goes on);
- a registry that does not answer is not a bad record: that partition goes back to its
  first record not handed on, the loop waits (`registry_backoff_s`, `waiting` says why
  for /health) and reads it again;
- once the sinks saw every record of a batch, the consumer's positions are committed
  (at-least-once: a crash replays at most the batch being handled); a revoked partition's
  finished records are committed before it goes.

If the loop itself dies, `failure` says why and the `on_failure` callbacks run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from streams.core.exceptions import CodecError, RegistryUnavailable
from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, EventKind
from streams.ops.metrics import (
    event_consume_delay_seconds,
    events_consumed_total,
    events_deadlettered_total,
)
from streams.runners.supervised import SupervisedLoop, group_consumer
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec, registry_backoff_s
from streams.wire.deadletters import deadletter_headers

log = logging.getLogger(__name__)

FETCH_RECORDS = 2_000
"""Records one poll may return (aiokafka's `max_records`): one commit per batch."""
FETCH_WAIT_MS = 50
"""How long the broker may hold a fetch with nothing to return (fetch.max.wait.ms)."""
POLL_TIMEOUT_MS = 500
"""How long `getmany` waits for records before the loop looks again."""


class IdempotentRunner(SupervisedLoop):
    """Reads the topics of `kinds` in a consumer group of its own; at-least-once."""

    def __init__(self, settings: HubSettings, codec: ConfluentAvroCodec,
                 kinds: Iterable[EventKind], *, name: str, group_id: str | None = None
                 ) -> None:
        super().__init__(f"{name} runner")
        self.settings = settings
        self.codec = codec
        self.group_id = group_id or f"{settings.app_id}-{name}"
        self.kinds = {settings.topic(POLICIES[kind].topic): kind for kind in kinds}
        self.deadletter_topic = settings.topic(DEADLETTER_TOPIC)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        """Held while a batch is handled and committed; a revocation waits for it."""
        self._done: dict[TopicPartition, int] = {}
        """Next offset of each partition whose records before it the sinks all saw."""
        self._committed: dict[TopicPartition, int] = {}
        self._metrics: dict[EventKind, tuple[Any, Any]] = {}

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, acks="all",
            **self.settings.kafka_auth(),
            enable_idempotence=True,
            max_request_size=self.settings.max_record_bytes + 64 * 1024)
        await producer.start()
        consumer = group_consumer(self.settings, self.group_id, fetch_max_wait_ms=FETCH_WAIT_MS)
        try:
            await consumer.start()
        except BaseException:
            await producer.stop()
            raise
        consumer.subscribe(list(self.kinds), listener=self.rebalance_listener())
        self._producer, self._consumer = producer, consumer
        self._launch()

    async def stop(self) -> None:
        """Stop reading; what the sinks saw is committed already, a batch cut short is read
        again by the next owner (at-least-once)."""
        await self._halt()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    # --- the loop --------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        retry = 0
        while True:
            batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                             max_records=FETCH_RECORDS)
            if not batches:
                continue
            async with self._lock:
                waiting = await self._handle(consumer, batches)
                await self._commit(self._done)
            if waiting is not None:
                self.waiting = f"waiting for the schema registry: {waiting}"
                log.warning("%s: %s; records wait and are read again", self.name, self.waiting)
                await asyncio.sleep(registry_backoff_s(retry))
                retry += 1
                continue
            retry, self.waiting = 0, None

    async def _handle(self, consumer: AIOKafkaConsumer,
                      batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
                      ) -> RegistryUnavailable | None:
        """Every record to the sinks, partition by partition; the registry error that stopped
        a partition, if any (that partition is back at its first record not handed on)."""
        assignment = consumer.assignment()
        waiting: RegistryUnavailable | None = None
        for tp, records in batches.items():
            if tp not in assignment:
                continue  # revoked meanwhile: its new owner reads it from the committed offset
            stopped = await self._partition(tp, records)
            if stopped is not None:
                offset, waiting = stopped
                consumer.seek(tp, offset)
                self._done[tp] = offset
                continue
            try:
                self._done[tp] = await consumer.position(tp)  # past a transaction marker too
            except IllegalStateError:  # revoked while its records were handled
                self._done.pop(tp, None)
        return waiting

    async def _partition(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
                         ) -> tuple[int, RegistryUnavailable] | None:
        kind = self.kinds[tp.topic]
        counter, delays = self._kind_metrics(kind)
        decode_known = self.codec.decode_known
        now = datetime.now
        for record in records:
            payload = record.value
            try:
                if not isinstance(payload, bytes):
                    raise CodecError(f"expected bytes, got {type(payload).__name__}")
                event = decode_known(kind, payload)
                if event is None:
                    event = await self.codec.decode(kind, payload)
            except RegistryUnavailable as exc:
                return record.offset, exc
            except CodecError as exc:
                await self._dead_letter(record, exc)
                continue
            counter.inc()
            delay_s = (now(UTC) - event.occurred_at).total_seconds()
            delays.observe(delay_s if delay_s > 0.0 else 0.0)
            await self._tell(event)
        return None

    def _kind_metrics(self, kind: EventKind) -> tuple[Any, Any]:
        found = self._metrics.get(kind)
        if found is None:  # a labelled child per kind, looked up once
            found = self._metrics[kind] = (events_consumed_total.labels(kind=kind.value),
                                           event_consume_delay_seconds.labels(kind=kind.value))
        return found

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: BaseException
                           ) -> None:
        """The original bytes and headers, plus where the record came from and why; the
        loop goes on once the broker has it."""
        producer = self._producer
        assert producer is not None
        log.warning("%s: dead-lettering %s[%d]@%d: %s", self.name, record.topic,
                    record.partition, record.offset, error)
        headers = [*(record.headers or ()), *deadletter_headers(
            topic=record.topic, partition=record.partition, offset=record.offset, error=error)]
        value = record.value if isinstance(record.value, bytes) else b""
        sent = await producer.send(self.deadletter_topic, value=value, key=record.key,
                                   headers=headers)
        await sent
        events_deadlettered_total.labels(topic=record.topic).inc()

    # --- offsets ---------------------------------------------------------------------

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit what changed since the last commit. A commit refused because the group is
        rebalancing is not an error: the partition's next owner reads those records again."""
        consumer = self._consumer
        assert consumer is not None
        changed = {tp: offset for tp, offset in offsets.items()
                   if self._committed.get(tp) != offset}
        if not changed:
            return
        try:
            await consumer.commit(changed)
        except KafkaError as exc:
            log.warning("%s: commit of %s failed (read again by their owner): %s",
                        self.name, sorted(f"{tp.topic}[{tp.partition}]" for tp in changed), exc)
            return
        self._committed.update(changed)

    async def revoke(self, revoked: Iterable[TopicPartition]) -> None:
        """Commit what the sinks saw of the revoked partitions, after the batch in hand."""
        gone = set(revoked)
        async with self._lock:
            await self._commit({tp: offset for tp, offset in self._done.items() if tp in gone})
            for tp in gone:
                self._done.pop(tp, None)
                self._committed.pop(tp, None)
