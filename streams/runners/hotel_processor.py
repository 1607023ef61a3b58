"""Each hotel's stays, rooms, customers and inventory, decided in Kafka transactions.

The design's rules span entities (a booking takes a night from its room type; a
check-in needs its room; a late check-out must not vacate the next guest's room), so
a hotel is decided in one place: the partition its id hashes to (murmur2, as Kafka's
Java clients place keys). The loop is the classic consume-transform-produce:

- one consumer group reads the four event topics and this app's `<app>.hotel-events`
  with the range assignor, so partition p of every one lands on one worker;
- a record from an event topic is decoded (to learn its hotel; what cannot be read is
  dead-lettered here) and forwarded to its hotel's partition of `<app>.hotel-events`,
  whichever partitioner its producer used;
- a record from `<app>.hotel-events` goes through the pure step (`streams.core.step`); the
  new states (compacted log `<app>.hotel-state`), refusals and derived room events
  are sent in the same transaction as the consumed offsets. A round of records is decided
  first, then sent: each state it changed is written once, with its last value
  (`effects.Round`), while refusals and room events go one by one, in order;
- partition p has its own transactional producer (`<app>-hotels-<p>`): whoever owns p
  next fences the old owner and aborts its open transaction, then restores p's state
  from the log (read_committed) before it reads an event.

Any error while handling one record sends that record to the dead-letter topic and
the loop goes on; a registry that does not answer pauses the loop until it does (the
records are not bad, the registry is away); if the loop itself ever dies, `failure`
says why and the worker stops with a non-zero exit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from streams.core.exceptions import RecordTooLarge, RegistryUnavailable
from streams.core.kinds import POLICIES, EventKind
from streams.core.rules import Principal, RuleSettings
from streams.core.step import FACTS_VERSION, apply_event, refuse_unverified, seed_facts
from streams.ops.metrics import (
    event_apply_delay_seconds,
    events_consumed_total,
    events_deadlettered_total,
    refusals_total,
)
from streams.runners.admin import ensure_topics
from streams.runners.effects import (
    OutRecord,
    Round,
    encode_states,
    fact_records,
    step_records,
)
from streams.runners.forwarding import HOTEL_HEADER, Forwarding
from streams.runners.ordering import SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC, Intake
from streams.runners.restore import State, restore_partition
from streams.runners.supervised import SupervisedLoop, group_consumer
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map
from streams.wire.codec import ConfluentAvroCodec, registry_backoff_s
from streams.wire.partitioning import hotel_partition
from streams.wire.signing import PRINCIPAL_HEADER, UNVERIFIED_HEADER, Signer
from streams.wire.topics import (
    DAY_MS,
    TopicSpec,
    hotel_events_topic,
    report_facts_topic,
    state_topic,
)

log = logging.getLogger(__name__)


KINDS = (EventKind.RESERVATION, EventKind.CHECKIN_CHECKOUT, EventKind.ROOM, EventKind.CUSTOMER)
FETCH_RECORDS = 10_000
"""Records one poll may return (aiokafka's `max_records`)."""
FETCH_WAIT_MS = 100
"""How long the broker may hold a fetch with nothing to return (fetch.max.wait.ms; aiokafka's
default is 500). A committed transaction does not answer a waiting read_committed fetch
(measured: commit of the forward -> fetch of the re-keyed record up to ~600 ms), so the
forwarded records would wait out the fetch wait before a round could apply them. 20 ms
stalled the cold-backlog test (tests/runners/test_cold_backlog_order.py) on this box; 100
passes it."""


class HotelProcessor(SupervisedLoop):
    """Runs inside every worker; scales out with the partitions (hotels spread over them)."""

    def __init__(self, settings: HubSettings, codec: ConfluentAvroCodec, rules: RuleSettings,
                 ) -> None:
        super().__init__("hotel processor")
        self.settings = settings
        self.codec = codec
        self.rules = rules
        self.group_id = settings.processor_group
        self.sources = {settings.topic(POLICIES[kind].topic): kind for kind in KINDS}
        self.hotel_events = hotel_events_topic(settings)
        self._consumer: AIOKafkaConsumer | None = None
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._states: dict[int, State] = {}
        self._lock = asyncio.Lock()
        self._intake = Intake(self.sources, self.hotel_events)
        self._forwarding = Forwarding(settings, codec, self.sources, self.hotel_events)
        """Fetched records not yet taken, and what goes next (`streams.runners.ordering`)."""
        self._signer: Signer | None = None
        """Signs the derived room events as the hub (None when security is off)."""

    async def start(self) -> None:
        await self._ensure_own_topics()
        await self.codec.ensure_registered()
        consumer = group_consumer(
            self.settings, self.group_id,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        await consumer.start()
        consumer.subscribe([*self.sources, self.hotel_events], listener=self.rebalance_listener())
        self._consumer = consumer
        self._launch()

    async def stop(self) -> None:
        await self._halt()
        async with self._lock:
            for partition in list(self._producers):
                await self._release(partition)
        if self._consumer is not None:
            await self._consumer.stop()

    def state(self, tag: str, key: bytes) -> Any:
        """Current state this worker owns (None if unknown or owned elsewhere)."""
        for states in self._states.values():
            if (tag, key) in states:
                return states[tag, key]
        return None

    # --- partitions come and go ------------------------------------------------------

    async def assign(self, assigned: Iterable[TopicPartition]) -> None:
        async with self._lock:
            for partition in sorted({tp.partition for tp in assigned} - set(self._producers)):
                await self._acquire(partition)

    async def revoke(self, revoked: Iterable[TopicPartition]) -> None:
        async with self._lock:
            for partition in {tp.partition for tp in revoked}:
                await self._release(partition)
            for tp in revoked:
                self._intake.drop(tp)

    async def _acquire(self, partition: int) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            **self.settings.kafka_auth(),
            transactional_id=f"{self.group_id}-{partition}",
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_request_size=self.settings.max_record_bytes + 64 * 1024,
        )
        await producer.start()  # fences the previous owner, aborts its transaction
        self._signer = Signer.of(self.settings)  # a rotated secret, as the producer's
        self._producers[partition] = producer
        self._states[partition] = await self._restore(partition)
        await self._seed_reports(partition, producer)
        log.info("hotel partition %d ready: %d states restored", partition,
                 len(self._states[partition]))

    async def _seed_reports(self, partition: int, producer: AIOKafkaProducer) -> None:
        """Send the report facts of every stay and room this partition already holds, once
        (`streams.core.step.seed_facts`), so reports also count what was decided before."""
        states = self._states[partition]
        facts, marker = seed_facts(states)
        if not marker:
            return
        records = [*fact_records(facts, self.settings),
                   *encode_states(marker, partition=partition, settings=self.settings).values()]
        async with producer.transaction():
            await asyncio.gather(*await _send_all(producer, records))
        states.update(marker)
        if facts:
            log.info("hotel partition %d: %d report facts sent for the stays and rooms it "
                     "held before (facts version %d)", partition, len(facts), FACTS_VERSION)

    async def _release(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        self._states.pop(partition, None)
        if producer is not None:
            await producer.stop()

    async def _restore(self, partition: int) -> State:
        """Everything committed to the state log of this partition (`streams.runners.restore`)."""
        return await restore_partition(self.settings, partition)

    # --- the loop --------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        retry = 0
        while True:
            batches = await consumer.getmany(timeout_ms=self._intake.poll_timeout_ms(),
                                             max_records=FETCH_RECORDS)
            self._intake.add(batches)
            by_partition = await self._intake.take(consumer)
            if not by_partition:
                continue
            async with self._lock:
                outcomes = await asyncio.gather(*(
                    self._process(partition, records)
                    for partition, records in by_partition.items()), return_exceptions=True)
            waiting = [exc for exc in outcomes if isinstance(exc, RegistryUnavailable)]
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(
                        outcome, RegistryUnavailable):
                    raise outcome
            if waiting:
                # What these partitions took and did not commit is read again.
                failed = {partition for partition, outcome in zip(by_partition, outcomes,
                                                                 strict=True)
                          if isinstance(outcome, RegistryUnavailable)}
                await self._rewind(tp for tp in consumer.assignment() if tp.partition in failed)
                self.waiting = f"waiting for the schema registry: {waiting[0]}"
                log.warning("%s; records wait and are read again", self.waiting)
                await asyncio.sleep(registry_backoff_s(retry))
                retry += 1
                continue
            retry, self.waiting = 0, None

    async def _process(self, partition: int, records: list[ConsumerRecord[bytes, bytes]]
                       ) -> None:
        consumer = self._consumer
        assert consumer is not None
        producer = self._producers.get(partition)
        if producer is None:
            return  # revoked meanwhile; its new owner reads these from the committed offsets
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        fetched = set(offsets)
        decided = await self._decide(partition, records, checked=False)
        try:
            states = decided.state_records(partition=partition, settings=self.settings)
        except RecordTooLarge:
            # A state left over the limit: replay the round step by step, which
            # dead-letters the event that made it too large (nothing is sent yet).
            decided = await self._decide(partition, records, checked=True)
            states = decided.state_records(partition=partition, settings=self.settings)
        sends: list[asyncio.Future[Any]] = []
        try:
            async with producer.transaction():
                sends = await _send_all(producer, [*decided.outs, *states], sends)
                await asyncio.gather(*sends)
                # Every fetched record of these partitions is processed: commit the
                # position, which is past a transaction marker ending the fetch (as
                # Kafka Streams does), or the group's lag stays 1 on transactional topics.
                # A partition with records still buffered commits its next record's offset.
                for tp in offsets.keys() & consumer.assignment():
                    buffered = self._intake.next_offset(tp)
                    offsets[tp] = (buffered if buffered is not None
                                   else max(offsets[tp], await consumer.position(tp)))
                await producer.send_offsets_to_transaction(offsets, self.group_id)
        except ProducerFenced:
            _forget(sends)
            log.warning("hotel partition %d was fenced: giving it up and taking it again",
                        partition)
            await self._release(partition)
            await self._rewind(fetched)
            if any(tp.partition == partition for tp in consumer.assignment()):
                await self._acquire(partition)
            return
        except KafkaError as exc:
            _forget(sends)
            # Aborted: nothing of this batch is visible. Read it again.
            log.warning("transaction on hotel partition %d aborted: %s", partition, exc)
            await self._rewind(fetched)
            return
        self._states[partition].update(decided.overlay)
        now = time.time()
        for topic in decided.dead_letters:
            events_deadlettered_total.labels(topic=topic).inc()
        for kind, timestamp_ms in decided.applied:
            event_apply_delay_seconds.labels(kind=kind).observe(
                max(now - timestamp_ms / 1000, 0.0))
        for step in decided.steps:
            events_consumed_total.labels(kind=str(step.event.type)).inc()
            for refusal in step.refusals:
                refusals_total.labels(reason=refusal.reason_code.value).inc()
            for event in (step.event, *step.room_events):
                await self._tell(event)

    async def _decide(self, partition: int, records: list[ConsumerRecord[bytes, bytes]],
                      *, checked: bool) -> Round:
        """What these records decide, before anything is sent (`effects.Round`); raises
        RegistryUnavailable (the loop reads them again later)."""
        decided = Round(checked=checked)
        for record in records:
            try:
                if record.topic == self.hotel_events:
                    decided.outs.extend(await self._apply(record, partition, decided))
                else:
                    decided.outs.extend(await self._forwarding.forward(record))
            except (RegistryUnavailable, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.warning("dead-lettering %s[%d]@%d: %r", record.topic, record.partition,
                            record.offset, exc)
                letter, topic = self._forwarding.dead_letter(record, exc)
                decided.outs.append(letter)
                decided.dead_letters.append(topic)
        return decided

    async def _rewind(self, offsets: Iterable[TopicPartition]) -> None:
        """Back to the committed offsets, so an aborted batch is read again."""
        consumer = self._consumer
        assert consumer is not None
        for tp in list(offsets):
            self._intake.drop(tp)
            if tp not in consumer.assignment():
                continue
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def _apply(self, record: ConsumerRecord[bytes, bytes], partition: int,
                     decided: Round) -> list[OutRecord]:
        found = header_map(record.headers)
        source = found.get(SOURCE_TOPIC, "")
        if source not in self.sources:
            raise ValueError(f"re-keyed record names no event topic of this hub: {source!r}")
        event = await self.codec.decode(self.sources[source], record.value or b"")
        if hotel_partition(event.hotel_id, self.settings.topic_partitions) != partition:
            # Its ce_hotelid header named another hotel than the event: on to the right one.
            log.warning("%s[%d]@%d: header hotel %r is not the event's %r; forwarded again",
                        source, int(found.get(SOURCE_PARTITION, -1)),
                        int(found.get(SOURCE_OFFSET, -1)), found.get(HOTEL_HEADER),
                        event.hotel_id)
            return [self._forwarding.again(record, event)]
        states, overlay = self._states[partition], decided.overlay

        def read(tag: str, key: bytes) -> Any:
            return overlay[tag, key] if (tag, key) in overlay else states.get((tag, key))

        principal = self._principal(found, event.updated_by_system)
        step = refuse_unverified(event, principal) or apply_event(event, read, self.rules)
        records = step_records(step, settings=self.settings, codec=self.codec,
                               signer=self._signer, principal=principal.name)
        if decided.checked:
            decided.encoded.update(encode_states(step.changes, partition=partition,
                                                 settings=self.settings))
        overlay.update(step.changes)  # only once every output is known to fit
        decided.steps.append(step)
        decided.applied.append((str(event.type), record.timestamp))
        return records

    def _principal(self, found: dict[str, str], claimed: str) -> Principal:
        """Who produced the record, as its intake verified it (`Forwarding.forward`); with
        security off, the system the event names."""
        if not self.settings.secured:
            return Principal(claimed)
        return Principal(found.get(PRINCIPAL_HEADER),
                         found.get(UNVERIFIED_HEADER, "no principal header from the intake"))

    async def _ensure_own_topics(self) -> None:
        """The state log and the re-keyed events, before the first transaction writes to
        them, with the event topics' partition count (co-partitioning needs it)."""
        await ensure_topics(self.settings, [
            TopicSpec(state_topic(self.settings), self.settings.topic_partitions,
                      {"cleanup.policy": "compact"}),
            TopicSpec(report_facts_topic(self.settings), self.settings.topic_partitions,
                      {"retention.ms": str(7 * DAY_MS)}),
            TopicSpec(self.hotel_events, self.settings.topic_partitions,
                      {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}),
        ])


async def _send_all(producer: AIOKafkaProducer, records: Iterable[OutRecord],
                    sends: list[asyncio.Future[Any]] | None = None
                    ) -> list[asyncio.Future[Any]]:
    """Hand every record to the producer, in order; the futures of their acknowledgements
    (appended to `sends`, so an abort half way still knows what was handed over)."""
    sends = [] if sends is None else sends
    for out in records:
        sends.append(await producer.send(
            out.topic, key=out.key, value=out.value, headers=out.headers,
            partition=out.partition, timestamp_ms=out.timestamp_ms))
    return sends


def _forget(sends: list[asyncio.Future[Any]]) -> None:
    """Sends of an aborted transaction fail with it; their outcome is the abort's."""
    for send in sends:
        send.add_done_callback(lambda done: done.cancelled() or done.exception())
