"""Stays (reservations and check-in/out) in Kafka transactions, one producer per partition.

Check-in/out is CRITICAL and exactly-once in the design. Faust's own exactly_once
proved unreliable on this stack (tests/agents/test_exactly_once.py: duplicated and
lost events after SIGKILL, rounds that stopped committing), so stays take this
dedicated path, the classic consume-transform-produce loop:

- the two topics are co-partitioned (same key, same partition count) and read by one
  consumer group with the range assignor, so partition p of both lands on one worker;
- partition p has its own transactional producer, `transactional.id` = `<app>-stays-<p>`:
  whoever owns p next starts a producer with the same id, which fences the old owner
  and aborts its open transaction before anything is read;
- the state of partition p lives in memory and in the compacted topic `<app>.stays`,
  restored (read_committed, to the end) before p is processed;
- each batch of p is one transaction: the state records, the derived room events,
  refusals and availability deltas, and the consumed offsets commit together or not
  at all. Memory is updated only after the commit.

The Faust agent `agents.stay.mirror_stays` copies `<app>.stays` into the queryable
`reservation_to_state` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, ProducerFenced, TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord

from streams.codec import ConfluentAvroCodec
from streams.deadletter import deadletter_headers
from streams.effects import delta_topic, outcome_records, stays_topic
from streams.exceptions import CodecError
from streams.kinds import DEADLETTER_TOPIC, POLICIES, EventKind
from streams.metrics import events_consumed_total, events_deadlettered_total
from streams.models import CheckinCheckoutEvent, HotelEvent, ReservationEvent, record_key
from streams.rules import Outcome, RuleSettings, apply_movement, apply_reservation
from streams.settings import HubSettings
from streams.state import ReservationState

log = logging.getLogger(__name__)

Sink = Callable[[HotelEvent], Awaitable[None] | None]


class StayProcessor:
    """Runs inside every worker; scales out with the partitions of the stay topics."""

    def __init__(self, settings: HubSettings, codec: ConfluentAvroCodec, rules: RuleSettings
                 ) -> None:
        self.settings = settings
        self.codec = codec
        self.rules = rules
        self.group_id = f"{settings.app_id}-stays"
        self.topics = {
            settings.topic(POLICIES[kind].topic): kind
            for kind in (EventKind.RESERVATION, EventKind.CHECKIN_CHECKOUT)
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._states: dict[int, dict[bytes, ReservationState]] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._sinks: list[Sink] = []

    def add_sink(self, sink: Sink) -> None:
        """Called with each event after its transaction committed (tests, the demo)."""
        self._sinks.append(sink)

    async def start(self) -> None:
        await self._ensure_own_topics()
        await self.codec.ensure_registered()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.settings.app_id}-stays",
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await consumer.start()
        consumer.subscribe(list(self.topics), listener=_Rebalance(self))
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="stay-processor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            for partition in list(self._producers):
                await self._release(partition)
        if self._consumer is not None:
            await self._consumer.stop()

    def state(self, key: bytes) -> ReservationState | None:
        """Current state of a stay this worker owns (None if unknown or not owned here)."""
        for states in self._states.values():
            if key in states:
                return states[key]
        return None

    # --- partitions come and go ------------------------------------------------------

    async def assign(self, assigned: Iterable[TopicPartition]) -> None:
        async with self._lock:
            for partition in sorted({tp.partition for tp in assigned} - set(self._producers)):
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    transactional_id=f"{self.settings.app_id}-stays-{partition}",
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=5,
                )
                await producer.start()  # fences the previous owner, aborts its transaction
                self._producers[partition] = producer
                self._states[partition] = await self._restore(partition)
                log.info("stays partition %d ready: %d stays restored", partition,
                         len(self._states[partition]))

    async def revoke(self, revoked: Iterable[TopicPartition]) -> None:
        async with self._lock:
            for partition in {tp.partition for tp in revoked}:
                await self._release(partition)

    async def _release(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        self._states.pop(partition, None)
        if producer is not None:
            await producer.stop()

    async def _restore(self, partition: int) -> dict[bytes, ReservationState]:
        """Everything committed to the state log of this partition, last value per key."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await reader.start()
        try:
            tp = TopicPartition(stays_topic(self.settings), partition)
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            states: dict[bytes, ReservationState] = {}
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.key is None:
                        continue
                    if record.value is None:
                        states.pop(record.key, None)
                    else:
                        states[record.key] = ReservationState.model_validate_json(record.value)
            return states
        finally:
            await reader.stop()

    # --- the loop --------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            by_partition: dict[int, list[ConsumerRecord[bytes, bytes]]] = {}
            for tp, records in batches.items():
                by_partition.setdefault(tp.partition, []).extend(records)
            for partition, records in by_partition.items():
                records.sort(key=lambda record: record.timestamp)
                await self._process(partition, records)

    async def _process(self, partition: int, records: list[ConsumerRecord[bytes, bytes]]
                       ) -> None:
        consumer = self._consumer
        assert consumer is not None
        async with self._lock:
            producer = self._producers.get(partition)
            if producer is None:
                return  # revoked meanwhile; its new owner reads these again
            overlay: dict[bytes, ReservationState] = {}
            processed: list[HotelEvent] = []
            offsets: dict[TopicPartition, int] = {}
            try:
                async with producer.transaction():
                    sends = []
                    for record in records:
                        offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
                        event, record_sends = await self._apply(producer, record, partition,
                                                                overlay)
                        sends.extend(record_sends)
                        if event is not None:
                            processed.append(event)
                    await asyncio.gather(*sends)
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
            except ProducerFenced:
                log.warning("stays partition %d moved to another worker", partition)
                await self._release(partition)
                return
            except KafkaError as exc:
                # Aborted: nothing of this batch is visible. Read it again from the
                # committed offsets.
                log.warning("stays transaction on partition %d aborted: %s", partition, exc)
                for tp in offsets:
                    committed = await consumer.committed(tp)
                    if committed is None:
                        await consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, committed)
                return
            self._states[partition].update(overlay)
        for event in processed:
            events_consumed_total.labels(kind=str(event.type)).inc()
            for sink in self._sinks:
                result = sink(event)
                if asyncio.iscoroutine(result):
                    await result

    async def _apply(
        self, producer: AIOKafkaProducer, record: ConsumerRecord[bytes, bytes], partition: int,
        overlay: dict[bytes, ReservationState],
    ) -> tuple[HotelEvent | None, list[Awaitable[Any]]]:
        kind = self.topics[record.topic]
        try:
            event = await self.codec.decode(kind, record.value or b"")
        except CodecError as exc:
            headers = [*(record.headers or ()), *deadletter_headers(
                topic=record.topic, partition=record.partition, offset=record.offset, error=exc)]
            events_deadlettered_total.labels(topic=record.topic).inc()
            return None, [await producer.send(self.settings.topic(DEADLETTER_TOPIC),
                                              value=record.value, key=record.key,
                                              headers=headers)]
        key = record_key(event)
        current = overlay.get(key) or self._states[partition].get(key)
        outcome: Outcome[ReservationState]
        if isinstance(event, ReservationEvent):
            outcome = apply_reservation(current, event, self.rules)
        elif isinstance(event, CheckinCheckoutEvent):
            outcome = apply_movement(current, event, self.rules)
        else:
            return None, []
        sends = []
        if outcome.state is not None:
            overlay[key] = outcome.state
            sends.append(await producer.send(stays_topic(self.settings), key=key,
                                             value=outcome.state.model_dump_json().encode()))
        for out in outcome_records(outcome, settings=self.settings, codec=self.codec):
            sends.append(await producer.send(out.topic, key=out.key, value=out.value,
                                             headers=out.headers))
        return event, sends

    async def _ensure_own_topics(self) -> None:
        """The state log and the delta topic, before the first transaction writes to them."""
        wanted = {stays_topic(self.settings): {"cleanup.policy": "compact"},
                  delta_topic(self.settings): {"cleanup.policy": "delete"}}
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(name, num_partitions=self.settings.topic_partitions,
                         replication_factor=self.settings.replication_factor,
                         topic_configs=config)
                for name, config in wanted.items() if name not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        finally:
            await admin.close()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, processor: StayProcessor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.processor.revoke(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.processor.assign(assigned)
