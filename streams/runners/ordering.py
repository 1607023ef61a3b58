"""What the hotel processor takes next from what its consumer fetched.

Source records (the four event topics) go in timestamp order across every assigned
source partition, as Kafka Streams' max.task.idle.ms does it: an empty source partition
holds the others back only while the consumer does not know it is at its end (no fetch
answered for it yet, or its last stable offset from the last fetch response is past the
position: records there are not fetched yet), and at most TASK_IDLE_S. A live stream
(every partition read to its end) is never held back: its records are taken as soon as
they are fetched. The re-keyed topic `<app>.hotel-events` is taken as fetched, each
partition's records merged by source.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Collection, Mapping
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET = (
    "hub.source.topic", "hub.source.partition", "hub.source.offset")
"""Headers of a re-keyed record: where its producer wrote it."""
ROUND_RECORDS = 5_000
"""Records of one topic-partition kind taken into one round of transactions at most."""
TASK_IDLE_S = 2.0
"""How long source records wait for a partition known to hold unfetched records
(max.task.idle.ms)."""

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class Intake:
    """Fetched records not yet taken, per topic-partition, and the order they go in."""

    def __init__(self, sources: Collection[str], hotel_events: str) -> None:
        self.sources = sources
        self.hotel_events = hotel_events
        self.buffers: dict[TopicPartition, deque[Record]] = {}
        self.idle_since: float | None = None
        """When source records began waiting for a partition with unfetched records."""
        self.more = False
        """Records are buffered beyond what the last round took: poll without waiting."""

    def add(self, batches: Mapping[TopicPartition, list[Record]]) -> None:
        for tp, records in batches.items():
            self.buffers.setdefault(tp, deque()).extend(records)

    def drop(self, tp: TopicPartition) -> None:
        self.buffers.pop(tp, None)

    def next_offset(self, tp: TopicPartition) -> int | None:
        """Offset of the first record of `tp` fetched and not yet taken, if any."""
        buffered = self.buffers.get(tp)
        return buffered[0].offset if buffered else None

    def poll_timeout_ms(self) -> int:
        """How long the next poll may wait for records: not at all while records are
        buffered, briefly while waiting for a partition with unfetched records."""
        return 0 if self.more else 100 if self.idle_since is not None else 500

    async def _at_end(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
        """Nothing of `tp` is buffered and the consumer knows it has read all it may
        (read_committed: its last stable offset, from the last fetch response)."""
        if self.buffers.get(tp):
            return False
        stable = consumer.last_stable_offset(tp)
        if stable is None:
            stable = consumer.highwater(tp)
        return stable is not None and await consumer.position(tp) >= stable

    async def take(self, consumer: AIOKafkaConsumer) -> dict[int, list[Record]]:
        """What to process now, by partition (see the module's doc)."""
        assigned = consumer.assignment()
        sources = [tp for tp in assigned if tp.topic in self.sources]
        buffers = self.buffers
        taken: dict[int, list[Record]] = {}
        if any(buffers.get(tp) for tp in sources):
            blocked = [tp for tp in sources
                       if not buffers.get(tp) and not await self._at_end(consumer, tp)]
        else:
            blocked = []
        if blocked:
            now = time.monotonic()
            if self.idle_since is None:
                self.idle_since = now
            if now - self.idle_since < TASK_IDLE_S:
                sources = []  # wait for the blocked partitions' next fetch
            else:
                blocked = []  # waited long enough: go on with what is here
        if not blocked:
            self.idle_since = None
        heads = [(buffers[tp][0].timestamp, index, tp)
                 for index, tp in enumerate(sources) if buffers.get(tp)]
        heapq.heapify(heads)
        count, self.more = 0, False
        while heads and count < ROUND_RECORDS:
            _, index, tp = heapq.heappop(heads)
            buffer = buffers[tp]
            taken.setdefault(tp.partition, []).append(buffer.popleft())
            count += 1
            if buffer:
                heapq.heappush(heads, (buffer[0].timestamp, index, tp))
            elif not blocked and not await self._at_end(consumer, tp):
                break  # it may hold earlier records than the other heads: fetch first
        self.more = bool(heads) and count >= ROUND_RECORDS
        for tp in assigned:
            if tp.topic == self.hotel_events and buffers.get(tp):
                buffer = buffers[tp]
                records = [buffer.popleft() for _ in range(min(len(buffer), ROUND_RECORDS))]
                taken.setdefault(tp.partition, []).extend(in_source_order(records))
                self.more = self.more or bool(buffer)
        return taken


def in_source_order(records: list[Record]) -> list[Record]:
    """Re-keyed records of one partition, merged by timestamp across the event topic
    partitions they came from (records of different partitions have no order of their own;
    several transactional producers forward into one partition). Each source
    topic-partition keeps its order."""
    by_source: dict[tuple[bytes, bytes], list[Record]] = {}
    for record in records:
        found = dict(record.headers or ())
        by_source.setdefault((found.get(SOURCE_TOPIC, b""), found.get(SOURCE_PARTITION, b"")),
                             []).append(record)
    if len(by_source) == 1:
        return records
    return list(heapq.merge(*by_source.values(), key=lambda record: record.timestamp))
