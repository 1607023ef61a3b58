"""Consumer-group lag as the broker sees it, for catch-up benchmarks; and raw topic copies.

A group is caught up on a partition when its committed offset covers every record a
read_committed consumer would get: committed >= end offset, or the records between the
committed offset and the end are only transaction markers (or aborted records). The
second case is checked by reading that short tail with a read_committed consumer: its
position passes markers without returning them. So a transactional topic, whose last
offset is a commit marker, counts as caught up at committed = end - 1, and an open
transaction keeps it not caught up (the position cannot pass the last stable offset).

Every client here connects as the settings it is given (`HubSettings.kafka_auth()`): the
catch-up benchmark passes the operator's, since it watches groups and copies topics of
several identities (the hub's and the Quix peer's) as the harness, not as either side.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import HubSettings

TAIL = 64
"""Uncommitted tail (offsets) read to tell markers from records; longer is simply lag."""


@dataclass
class Watched:
    """A consumer group and the topics it must have consumed to the end."""

    group: str
    topics: list[str]
    find: Callable[[Iterable[str]], list[str]] | None = None
    """Finds more topics of the group by name once they exist (e.g. Quix's repartition)."""
    expect_found: int = 0


@dataclass
class Snapshot:
    at: float
    committed_any: bool
    caught_up: bool
    lag: dict[str, int] = field(default_factory=dict)
    """Offsets behind the end per topic (markers included), for progress logs."""


class LagWatcher:
    def __init__(self, settings: HubSettings, groups: Sequence[Watched]) -> None:
        bootstrap, auth = settings.bootstrap_servers, settings.kafka_auth()
        self.bootstrap = bootstrap
        self.groups = list(groups)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **auth,
                                          request_timeout_ms=10_000)
        self._ends = AIOKafkaConsumer(bootstrap_servers=bootstrap, **auth,
                                      enable_auto_commit=False)
        self._tail = AIOKafkaConsumer(bootstrap_servers=bootstrap, **auth,
                                      enable_auto_commit=False, isolation_level="read_committed")
        self._partitions: dict[str, list[TopicPartition]] = {}
        self._only_markers: dict[tuple[TopicPartition, int, int], bool] = {}

    async def __aenter__(self) -> LagWatcher:
        await asyncio.wait_for(self._admin.start(), 15)
        await asyncio.wait_for(self._ends.start(), 15)
        await asyncio.wait_for(self._tail.start(), 15)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._tail.stop()
        await self._ends.stop()
        await self._admin.close()

    async def _topics(self, group: Watched) -> list[str] | None:
        """The group's topics with their partitions known; None while one does not exist."""
        missing = [topic for topic in group.topics if topic not in self._partitions]
        if group.find is not None and len(group.topics) < group.expect_found:
            missing.append("?")
        if missing:
            names = await self._admin.list_topics()
            if group.find is not None and "?" in missing:
                group.topics += [name for name in group.find(names) if name not in group.topics]
            for topic in group.topics:
                if topic in names and topic not in self._partitions:
                    parts = self._ends.partitions_for_topic(topic)
                    if not parts:
                        await self._ends._client.force_metadata_update()
                        parts = self._ends.partitions_for_topic(topic)
                    if parts:
                        self._partitions[topic] = [TopicPartition(topic, p) for p in parts]
            if any(topic not in self._partitions for topic in group.topics) or (
                    len(group.topics) < group.expect_found):
                return None
        return group.topics

    async def snapshot(self) -> Snapshot:
        """Committed offsets first, then the ends: caught up means nothing was added since,
        so the group was caught up when its offsets were read (`Snapshot.at`)."""
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in self.groups:
            offsets = await self._admin.list_consumer_group_offsets(group.group)
            committed[group.group] = {tp: meta.offset for tp, meta in offsets.items()
                                      if meta.offset >= 0}
        at = time.time()
        caught_up, lag = True, dict[str, int]()
        for group in self.groups:
            topics = await self._topics(group)
            if topics is None:
                caught_up = False
                continue
            tps = [tp for topic in topics for tp in self._partitions[topic]]
            ends = await self._ends.end_offsets(tps)
            stable = await self._tail.end_offsets(tps)  # read_committed: the last stable offset
            for tp in tps:
                done = committed[group.group].get(tp, 0)
                behind = max(ends[tp] - done, 0)
                lag[tp.topic] = lag.get(tp.topic, 0) + behind
                if not behind:
                    continue
                # An open transaction, or lag; else only markers may be left.
                open_or_far = stable[tp] < ends[tp] or behind > TAIL
                if open_or_far or (caught_up and not await self._markers_only(tp, done,
                                                                              ends[tp])):
                    caught_up = False
        return Snapshot(at, any(committed.values()), caught_up, lag)

    async def _markers_only(self, tp: TopicPartition, start: int, end: int) -> bool:
        """No record a read_committed consumer returns in [start, end) (no transaction is
        open there: the caller checked the last stable offset)."""
        known = self._only_markers.get((tp, start, end))
        if known is not None:
            return known
        if tp not in self._tail.assignment():
            self._tail.assign([*self._tail.assignment(), tp])
        self._tail.seek(tp, start)
        deadline = time.monotonic() + 1.0
        found = False
        while time.monotonic() < deadline and await self._tail.position(tp) < end:
            batch = await self._tail.getmany(tp, timeout_ms=100, max_records=TAIL)
            if any(record.offset < end for record in batch.get(tp, [])):
                found = True
                break
        only = not found and await self._tail.position(tp) >= end
        if only or found:
            self._only_markers[tp, start, end] = only
        return only


async def records_in(settings: HubSettings, topics: Sequence[str]) -> dict[str, int]:
    """End minus beginning offsets per topic (markers included)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(), enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 15)
    try:
        await consumer._client.force_metadata_update()
        counts = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            counts[topic] = sum(ends[tp] - starts[tp] for tp in tps)
        return counts
    finally:
        await consumer.stop()


async def read_all(settings: HubSettings, topic: str, *, timeout_s: float,
                   isolation: str = "read_committed") -> list[tuple[int, bytes | None,
                                                                  bytes | None,
                                                                  list[tuple[str, bytes]], int]]:
    """Every record of `topic` now: (partition, key, value, headers, timestamp), in each
    partition's order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(), enable_auto_commit=False,
                                isolation_level=isolation,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await asyncio.wait_for(consumer.start(), 15)
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout_s
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} took over {timeout_s:g} s")
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
                out += [(tp.partition, r.key, r.value, list(r.headers or ()), r.timestamp)
                        for r in batch.get(tp, [])]
        return out
    finally:
        await consumer.stop()


async def copy_topic(settings: HubSettings, source: str, target: str, *, timeout_s: float
                     ) -> int:
    """Same partitions, keys, values, headers and timestamps, in each partition's order.

    The records keep their signatures: they cover the kind's topic without the deployment's
    prefix (`streams.wire.signing`), so a copy into another prefix still verifies as the
    system that published it."""
    records = await read_all(settings, source, timeout_s=timeout_s,
                             isolation="read_uncommitted")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(), acks="all",
                                enable_idempotence=True, linger_ms=5)
    await asyncio.wait_for(producer.start(), 15)
    try:
        for start in range(0, len(records), 2000):
            sends = [await producer.send(target, value, key=key, headers=headers,
                                         partition=partition, timestamp_ms=timestamp)
                     for partition, key, value, headers, timestamp
                     in records[start:start + 2000]]
            await asyncio.wait_for(asyncio.gather(*sends), timeout_s)
    finally:
        await producer.stop()
    return len(records)
