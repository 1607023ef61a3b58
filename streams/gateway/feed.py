"""One WebSocket connection's own reader of the event topics.

Each connection reads with its own consumer, without a group, from its cursor (or now, or
a time): two gateway processes, or two connections of one system, never share or steal
records, and each gets every matching event once. Reads are `read_committed`, so a hub
transaction that aborted never reaches a client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.gateway.cursor import CursorError, CursorExpired, Positions, encode_cursor
from streams.settings import HubSettings

FEED_FETCH: dict[str, int] = {"fetch_max_wait_ms": 200, "max_partition_fetch_bytes": 1024 * 1024}
"""How a connection's consumer fetches: the broker answers as soon as one record is there
(the default fetch_min_bytes). Waiting for 4 KiB or 4 ms cut the gateway's CPU at 1,000
events/s from 0.58 to 0.41 of a core in bench.gateway, but raised the median latency by
4 ms and did not lower the p99, so it was not kept."""


def partitions_of(settings: HubSettings, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the hub's topics (created with `topic_partitions`, which the
    gateway and the workers check at start)."""
    return [TopicPartition(topic, p) for topic in topics for p in range(settings.topic_partitions)]


class Feed:
    def __init__(self, settings: HubSettings, topics: Sequence[str]) -> None:
        self.settings, self.topics = settings, list(topics)
        self.positions: Positions = {}
        self.end: Positions = {}
        """The end of each partition when the feed started (what a replay reads up to)."""
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self, *, cursor: Positions | None = None, since: datetime | None = None
                    ) -> None:
        """Position every partition: at the cursor, at `since`, or at the end (now).

        `CursorExpired` when the cursor points before what Kafka still keeps; `CursorError`
        when it points past the end (a cursor of another deployment).
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, **self.settings.kafka_auth(),
            group_id=None, enable_auto_commit=False, isolation_level="read_committed",
            client_id="hotelhub-gateway-ws", **FEED_FETCH)
        await consumer.start()
        self._consumer = consumer
        try:
            await self._position(consumer, cursor, since)
        except BaseException:
            await self.stop()
            raise

    async def _position(self, consumer: AIOKafkaConsumer, cursor: Positions | None,
                        since: datetime | None) -> None:
        partitions = partitions_of(self.settings, self.topics)
        consumer.assign(partitions)
        first = await consumer.beginning_offsets(partitions)
        end = self.end = await consumer.end_offsets(partitions)
        if cursor is not None:
            for tp in partitions:
                offset = cursor.get(tp, end[tp])
                if offset < first[tp]:
                    raise CursorExpired(
                        f"the cursor points at {tp.topic}[{tp.partition}] offset {offset}, "
                        f"but Kafka now keeps offsets {first[tp]} onwards (records older than "
                        f"{self.settings.event_retention_days} days are gone): resubscribe "
                        "without a cursor, or with 'since', and reconcile what you missed")
                if offset > end[tp]:
                    raise CursorError(
                        f"the cursor points at {tp.topic}[{tp.partition}] offset {offset}, past "
                        f"the end ({end[tp]}): it is not a cursor of this deployment")
                self.positions[tp] = offset
        elif since is not None:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions})
            for tp in partitions:
                at = found.get(tp)
                self.positions[tp] = at.offset if at is not None else end[tp]
        else:
            self.positions = dict(end)
        for tp, offset in self.positions.items():
            consumer.seek(tp, offset)

    def cursor(self) -> str:
        return encode_cursor(self.positions)

    async def read(self, timeout_ms: int = 1000) -> list[ConsumerRecord]:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=500)
        records = [record for batch in batches.values() for record in batch]
        records.sort(key=lambda record: record.timestamp)
        return records

    def passed(self, record: ConsumerRecord) -> None:
        """Move the cursor past `record` (delivered, or not for this connection)."""
        self.positions[TopicPartition(record.topic, record.partition)] = record.offset + 1

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def to_end(self) -> AsyncIterator[ConsumerRecord]:
        """Every record from where the feed started to where each partition ended then (a
        replay's snapshot). Done is judged by the consumer's position, which also passes the
        commit markers that end transactional partitions."""
        consumer = self._consumer
        assert consumer is not None
        left = {tp for tp, end in self.end.items() if self.positions.get(tp, end) < end}
        while left:
            for record in await self.read(timeout_ms=500):
                self.passed(record)
                if record.offset < self.end[TopicPartition(record.topic, record.partition)]:
                    yield record
            for tp in list(left):
                if await consumer.position(tp) >= self.end[tp]:
                    left.discard(tp)
