"""A compacted Kafka topic read as a shared map: what several gateway processes agree on.

Every process reads the whole topic at start and follows it; a write returns once this
process has read it back, so a caller that registered an endpoint finds it at once, and
every other process finds it within its fetch wait. The topic is the truth, never memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.settings import HubSettings

log = logging.getLogger(__name__)


class CompactedView:
    """JSON values by string key from a one-partition compacted topic; None is a tombstone."""

    def __init__(self, settings: HubSettings, topic: str, *, name: str) -> None:
        self.settings, self.topic, self.name = settings, topic, name
        self._values: dict[str, dict[str, Any]] = {}
        self._position = 0
        self._moved = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._follow: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[str, dict[str, Any] | None], None]] = []
        self.ready = False

    def on_change(self, listener: Callable[[str, dict[str, Any] | None], None]) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Read the topic to its end, then follow it."""
        auth = self.settings.kafka_auth()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, **auth, acks="all",
            enable_idempotence=True, client_id=f"hotelhub-gateway-{self.name}")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, **auth, group_id=None,
            enable_auto_commit=False, isolation_level="read_committed",
            fetch_max_wait_ms=500, client_id=f"hotelhub-gateway-{self.name}")
        await self._producer.start()
        await self._consumer.start()
        partition = TopicPartition(self.topic, 0)
        self._consumer.assign([partition])
        await self._consumer.seek_to_beginning(partition)
        end = (await self._consumer.end_offsets([partition]))[partition]
        while self._position < end:
            await self._read_once(timeout_ms=1000)
        self.ready = True
        self._follow = asyncio.create_task(self._follow_topic(), name=f"follow {self.topic}")

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()
        self.ready = False

    async def _follow_topic(self) -> None:
        while True:
            try:
                await self._read_once(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broker blip: the consumer reconnects by itself
                log.exception("reading %s failed; reading on", self.topic)
                await asyncio.sleep(1)

    async def _read_once(self, *, timeout_ms: int) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        partition = TopicPartition(self.topic, 0)
        for records in batches.values():
            for record in records:
                key = record.key.decode() if record.key else ""
                value = json.loads(record.value) if record.value is not None else None
                if value is None:
                    self._values.pop(key, None)
                else:
                    self._values[key] = value
                for listener in self._listeners:
                    listener(key, value)
        position = await self._consumer.position(partition)
        async with self._moved:
            self._position = position
            self._moved.notify_all()

    async def put(self, key: str, value: dict[str, Any] | None) -> None:
        """Write `value` (None deletes) and return once this process has read it back."""
        assert self._producer is not None
        body = None if value is None else json.dumps(value, separators=(",", ":")).encode()
        metadata = await self._producer.send_and_wait(self.topic, body, key=key.encode())
        async with asyncio.timeout(self.settings.publish_timeout_s), self._moved:
            await self._moved.wait_for(lambda: self._position > metadata.offset)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._values.get(key)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(list(self._values.items()))
