"""What happens outside the hub, for tests: a schema registry process of a test's own, records
framed by hand as another client would frame them, and topics read as any consumer reads them.

Only public interfaces: the registry is `python -m streams.registry` started and stopped by
its own pid file (`streams.registry.service`), records are Confluent-framed Avro written with
fastavro, topics are read with plain aiokafka consumers.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import fastavro
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.registry import service
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.http import Answer, get_or_none, poll
from tests.support.workers import WorkerProcess

T = TypeVar("T")

CONFLUENT_HEADER = struct.Struct(">bI")


@dataclass(frozen=True)
class OwnRegistry:
    """An embedded registry process of one test: its own port, home (pid and log files) and
    topic, on the session's Kafka. Stopped and started by its own pid file, never another's.

    Its own topic, not the shared `_schemas`: the embedded registry assumes one writer per
    topic and does not follow the topic after its start, so a second instance registering
    a new schema in `_schemas` could hand out an id the shared instance hands out again.
    """

    settings: HubSettings

    @classmethod
    def create(cls, base: HubSettings, *, home: Path, port: int, topic: str) -> OwnRegistry:
        return cls(base.model_copy(update={
            "home": home, "registry_port": port, "registry_topic": topic,
            "schema_registry_url": None,  # embedded, managed by pid file (not an external URL)
            "security_dir": base.identities_path.parent,  # the session's, not the new home's
        }))

    @property
    def url(self) -> str:
        return self.settings.registry_url

    @property
    def log(self) -> Path:
        return service.daemon(self.settings).log_path

    def pid(self) -> int | None:
        return service.daemon(self.settings).pid()

    def start(self, *, timeout_s: float = 60) -> None:
        """Blocks until `GET /` answers; refuses a port something else serves. Then the
        operator registers the contracts (idempotent), as a deployment does: the workers
        only look them up."""
        # The operator on Kafka: its topic is the test's own, which the ACLs do not name
        # (they give schema-registry `_schemas`).
        status = service.up(self.settings, timeout_s=timeout_s, identity="operator")
        assert status.pid is not None and status.healthy, status.describe()
        # In a thread of its own: start() is called from sync fixtures and async tests alike.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, self._register_contracts()).result(timeout=timeout_s)

    async def _register_contracts(self) -> None:
        operator = self.settings.as_identity("operator")
        async with SchemaRegistryClient.from_settings(operator) as client:
            await ConfluentAvroCodec(client).register()

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) the pid in this registry's own pid file."""
        service.down(self.settings)

    def answers(self) -> bool:
        return service.healthy(self.url)

    def log_tail(self, *, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return f"--- {self.log}: no log ---"
        return f"--- {self.log} ---\n" + "\n".join(text[-lines:])


def confluent_frame(schema_id: int, parsed_schema: Any, record: Mapping[str, Any]) -> bytes:
    """Magic byte 0, the 4-byte big-endian schema id, then the Avro binary body (fastavro)."""
    buffer = io.BytesIO()
    buffer.write(CONFLUENT_HEADER.pack(0, schema_id))
    fastavro.schemaless_writer(buffer, parsed_schema, dict(record))
    return buffer.getvalue()


async def read_topic(settings: HubSettings, topic: str, *,
                     isolation_level: str = "read_committed", timeout_s: float = 30
                     ) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` up to its end offsets now; [] when the topic does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await admin.start()
    try:
        # Describe only an existing topic: asking a broker for a missing one may create it.
        if topic not in await admin.list_topics():
            return []
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, found["partition"])
                  for entry in described for found in entry["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                enable_auto_commit=False, isolation_level=isolation_level)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(timeout_s):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(record for record in batch if record.offset <
                                   ends[TopicPartition(record.topic, record.partition)])
        return records
    finally:
        await consumer.stop()


def about_hotels(records: Iterable[ConsumerRecord[bytes, bytes]], hotel_ids: Iterable[str]
                 ) -> list[ConsumerRecord[bytes, bytes]]:
    """The records about one of `hotel_ids`: by their `ce_hotelid` header, else their key."""
    hotels = set(hotel_ids)
    prefixes = tuple(f"{hotel}:".encode() for hotel in hotels)
    return [record for record in records
            if header_map(record.headers).get("ce_hotelid") in hotels
            or (record.key or b"").startswith(prefixes)]


def describe(record: ConsumerRecord[bytes, bytes]) -> str:
    """A dead letter or refusal, briefly: where it is, its key, and its hub.* headers."""
    hub = {name: value for name, value in header_map(record.headers).items()
           if name.startswith("hub.") or name in ("ce_type", "ce_id")}
    return f"{record.topic}[{record.partition}]@{record.offset} key={record.key!r} {hub}"


async def health(session: aiohttp.ClientSession, worker: WorkerProcess) -> Answer | None:
    """The worker's /health (None while nothing listens); fails at once if it exited."""
    assert worker.running(), f"{worker.name} exited\n{worker.log_tail()}"
    return await get_or_none(session, f"{worker.url}/health")


async def until(workers: Iterable[WorkerProcess], ask: Callable[[], Awaitable[T]],
                done: Callable[[T], bool], what: str, *, timeout_s: float,
                interval_s: float = 0.5, extra: Callable[[], str] | None = None) -> T:
    """`poll`, failing with the workers' log tails (and `extra()`) after `timeout_s`."""
    started = time.monotonic()
    try:
        return await poll(ask, done, timeout_s=timeout_s, interval_s=interval_s, what=what)
    except AssertionError as exc:
        logs = "\n".join(worker.log_tail() for worker in workers)
        more = f"\n{extra()}" if extra is not None else ""
        raise AssertionError(
            f"{exc} (waited {time.monotonic() - started:.0f} s)\n{logs}{more}") from None


async def committed_offsets(settings: HubSettings, group_id: str, partitions: list[TopicPartition]
                            ) -> dict[TopicPartition, int]:
    """The offsets `group_id` committed for `partitions` (-1 where it committed none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
    finally:
        await admin.close()
    return {tp: found[tp].offset if tp in found else -1 for tp in partitions}
