"""Helpers for exactly-once tests: a real worker process to SIGKILL, and read_committed reads.

The exactly-once claim is about what other processes see, so everything here
looks from the outside: a worker subprocess (tests.support.workers) that can be
killed without warning, and plain aiokafka consumers that read topics, the hotel
processor's state log (`<app>.hotel-state`) and consumer groups as any downstream
system or operator would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from streams.runners.effects import split_state_key
from streams.settings import HubSettings
from streams.wire.topics import state_topic
from tests.support.workers import WorkerProcess, worker_env

FAST_GROUP_ENV = {
    # A SIGKILLed member stays in the group until its session expires; Faust's 60 s
    # default would make every restart wait a minute. 10 s is above the broker's
    # 6 s group.min.session.timeout.ms.
    "BROKER_SESSION_TIMEOUT": "10",
    "BROKER_HEARTBEAT_INTERVAL": "1",
}

_LOGGING = """\
import logging
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
for name in ("httpx", "aiokafka.consumer.fetcher"):
    logging.getLogger(name).setLevel(logging.WARNING)
"""


def killable_worker(
    settings: HubSettings, *, name: str, app_id: str, web_port: int, work_dir: Path
) -> WorkerProcess:
    """A worker (tests.support.workers) that logs at INFO and leaves its group fast when killed.

    `run_worker` leaves logging unconfigured, so a `sitecustomize` on the worker's
    PYTHONPATH turns it on: what Faust said before a kill is the evidence we report.
    """
    site = work_dir / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_LOGGING, encoding="utf-8")
    env = worker_env(settings, app_id=app_id, web_port=web_port, data_dir=work_dir / "data")
    path = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return WorkerProcess(name=name, env={**env, **FAST_GROUP_ENV, "PYTHONPATH": path},
                         web_port=web_port, log_dir=work_dir)


def sigkill(worker: WorkerProcess, *, timeout_s: float = 15.0) -> float:
    """SIGKILL the worker's own pid: no shutdown, no transaction abort, no commit. Returns when."""
    process = worker.process
    if process is None or process.poll() is not None:
        raise RuntimeError(f"{worker.name} is not running\n{worker.log_tail()}")
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout_s)
    return time.time()


async def read_topic(
    settings: HubSettings,
    topic: str,
    *,
    isolation_level: str = "read_committed",
    timeout_s: float = 30.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` up to its end now (the last stable offset under read_committed).

    Returns [] for a topic that does not exist yet.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_auth(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        auto_offset_reset="earliest",
    )
    await asyncio.wait_for(consumer.start(), timeout=settings.connect_timeout_s)
    try:
        tps = await _partitions(settings, topic)
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(timeout_s):
            while True:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    return records
                batch = await consumer.getmany(timeout_ms=300)
                for part in batch.values():
                    records.extend(
                        record for record in part
                        if record.offset < ends[TopicPartition(record.topic, record.partition)]
                    )
    finally:
        await consumer.stop()


async def _partitions(settings: HubSettings, topic: str) -> list[TopicPartition]:
    """The topic's partitions, or [] when it does not exist (yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await asyncio.wait_for(admin.start(), timeout=settings.connect_timeout_s)
    try:
        # Ask for a topic only once it exists: a metadata request for a missing one
        # makes a broker with auto.create.topics.enable create it, with 1 partition.
        if topic not in await asyncio.wait_for(admin.list_topics(),
                                               timeout=settings.connect_timeout_s):
            return []
        described = await asyncio.wait_for(admin.describe_topics([topic]),
                                           timeout=settings.connect_timeout_s)
    finally:
        await admin.close()
    return sorted(
        TopicPartition(topic, partition["partition"])
        for entry in described if entry["error_code"] == 0
        for partition in entry["partitions"]
    )


async def end_offsets(
    settings: HubSettings, topics: Iterable[str], *, isolation_level: str = "read_uncommitted"
) -> dict[TopicPartition, int]:
    """End offsets of existing topics: the high watermark by default, so open transactions count."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        **settings.kafka_auth(), group_id=None, enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await asyncio.wait_for(consumer.start(), timeout=settings.connect_timeout_s)
    try:
        tps = [tp for topic in topics for tp in await _partitions(settings, topic)]
        if not tps:
            return {}
        return await asyncio.wait_for(consumer.end_offsets(tps), timeout=settings.connect_timeout_s)
    finally:
        await consumer.stop()


async def committed_offsets(settings: HubSettings, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await asyncio.wait_for(admin.start(), timeout=settings.connect_timeout_s)
    try:
        offsets = await asyncio.wait_for(
            admin.list_consumer_group_offsets(group), timeout=settings.connect_timeout_s
        )
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


async def group_assignment(settings: HubSettings, group: str) -> dict[str, set[TopicPartition]]:
    """Member id -> the partitions the group's last assignment gave it ({} while empty)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await asyncio.wait_for(admin.start(), timeout=settings.connect_timeout_s)
    try:
        responses = await asyncio.wait_for(admin.describe_consumer_groups([group]),
                                           timeout=settings.connect_timeout_s)
    finally:
        await admin.close()
    members: dict[str, set[TopicPartition]] = {}
    for response in responses:
        for described in response.to_object()["groups"]:
            if described["group"] != group or described["state"] != "Stable":
                continue
            for member in described["members"]:
                raw = member["member_assignment"]
                members[member["member_id"]] = set(
                    ConsumerProtocolMemberAssignment.decode(raw).partitions()) if raw else set()
    return members


async def delete_topics_under(settings: HubSettings, *, session: HubSettings) -> list[str]:
    """Best effort: every topic of a test's own prefix (`tests.support.workers.isolated`), its
    apps' topics included; refuses a prefix that is not strictly under the session's."""
    prefix, outer = settings.topic_prefix, session.topic_prefix
    if not (prefix.startswith(outer) and len(prefix) > len(outer)):
        raise ValueError(f"{prefix!r} is not a test's own prefix under {outer!r}")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await asyncio.wait_for(admin.start(), timeout=settings.connect_timeout_s)
    try:
        names = await asyncio.wait_for(admin.list_topics(), timeout=settings.connect_timeout_s)
        ours = sorted(name for name in names if name.startswith(prefix))
        if ours:
            await asyncio.wait_for(admin.delete_topics(ours), timeout=settings.connect_timeout_s)
        return ours
    finally:
        await admin.close()


def last_values(records: Iterable[ConsumerRecord[bytes, bytes]]) -> dict[bytes, bytes | None]:
    """A compacted view of a changelog: the last value per key (None for a tombstone)."""
    latest: dict[bytes, bytes | None] = {}
    for record in records:
        if record.key is not None:
            latest[record.key] = record.value
    return latest


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    """The last value of header `name` on `record`, decoded, or None."""
    found = None
    for key, value in record.headers or ():
        if key == name:
            found = value.decode(errors="replace")
    return found


def of_hotel(record: ConsumerRecord[bytes, bytes], hotel_id: str) -> bool:
    """A hub record about `hotel_id`: its CloudEvents hotel header, else its key."""
    named = header(record, "ce_hotelid")
    if named is not None:
        return named == hotel_id
    return (record.key or b"").startswith(f"{hotel_id}:".encode())


async def hotel_state_records(
    settings: HubSettings, app_id: str, *, isolation_level: str = "read_committed"
) -> list[tuple[str, bytes, bytes | None]]:
    """Every record of the app's state log `<app>.hotel-state`, in log order per partition, as
    (tag, `hotel_id:entity_id`, JSON value or None for a tombstone)."""
    settings_app = settings.model_copy(update={"app_id": app_id})
    records = await read_topic(settings, state_topic(settings_app),
                               isolation_level=isolation_level)
    found = []
    for record in records:
        if record.key is None:
            continue
        tag, key = split_state_key(record.key)
        found.append((tag, key, record.value))
    return found


def last_states(records: Iterable[tuple[str, bytes, bytes | None]], hotel_id: str
                ) -> dict[tuple[str, str], bytes | None]:
    """The compacted view of `hotel_id`'s state: (tag, entity id) -> last value."""
    prefix = f"{hotel_id}:".encode()
    latest: dict[tuple[str, str], bytes | None] = {}
    for tag, key, value in records:
        if key.startswith(prefix):
            latest[tag, key[len(prefix):].decode()] = value
    return latest
