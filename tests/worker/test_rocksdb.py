"""The query tables on RocksDB (`streams.worker.stores`) against the real broker.

(a) a data dir kept after the changelogs were deleted and recreated: the stored offset is
    past the new changelog's end; the partition is wiped (Faust would raise
    ConsistencyError at every start), one that is current is kept;
(b) SIGKILL under heavy writes: a worker killed while it mirrors thousands of customers,
    restarted on the same data dir, serves every committed customer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from streams.core.kinds import EventKind
from streams.runners.admin import ensure_topics
from streams.settings import HubSettings
from streams.wire.topics import TopicSpec
from streams.worker.app import create_app
from streams.worker.stores import HubRocksDBStore
from streams.worker.tables import create_tables
from tests.support.events import sample
from tests.support.hotel import publishers_of
from tests.support.http import get_or_none, poll
from tests.support.workers import isolated, stopped_at_exit, worker_group

pytestmark = pytest.mark.integration


async def test_a_store_past_its_changelog_end_is_wiped(hub_settings: HubSettings,
                                                       tmp_path: Path) -> None:
    settings = isolated(hub_settings, "rocks-stale").model_copy(update={
        "worker_data_dir": tmp_path, "app_id": f"{hub_settings.topic_prefix}rocks-stale"})
    app = create_app(settings)
    tables = create_tables(app, settings.topic_partitions)
    store = tables.customers.data
    assert isinstance(store, HubRocksDBStore)
    topic = tables.customers.changelog_topic.get_topic_name()
    await ensure_topics(settings, [TopicSpec(topic, settings.topic_partitions,
                                             {"cleanup.policy": "compact"})])
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await producer.start()
    try:  # the recreated changelog: 3 records in partition 1, none in partition 0
        for index in range(3):
            await producer.send_and_wait(topic, b"{}", key=f"k{index}".encode(), partition=1)
    finally:
        await producer.stop()
    from faust.types import TP

    stale, current = TP(topic, 0), TP(topic, 1)
    for tp, offset in ((stale, 500), (current, 2)):  # what the old data dir says
        store._db_for_partition(tp.partition).put(b"old-row", b'{"offset": 1, "state": {}}')
        store.set_persisted_offset(tp, offset)
    try:
        assert await store.wipe_stale([stale, current]) == [0]
        assert store.persisted_offset(stale) is None
        assert store._db_for_partition(0).get(b"old-row") is None
        assert store.persisted_offset(current) == 2
        assert store._db_for_partition(1).get(b"old-row") is not None
    finally:
        await store.stop()


async def test_sigkill_under_writes_loses_no_committed_value(hub_settings: HubSettings,
                                                             tmp_path: Path) -> None:
    settings = isolated(hub_settings, "rocks-kill")
    hotel = f"H{uuid.uuid4().hex[:6]}"
    customers = 3000
    (worker,) = worker_group(settings, "rocks-kill", tmp_path, count=1)
    assert worker.env.get("HOTELHUB_TABLE_STORE", "rocksdb") == "rocksdb"

    def url(index: int) -> str:
        return f"{worker.url}/customers/{hotel}/{hotel}-C{index:05d}"

    async def served(session: aiohttp.ClientSession, index: int) -> bool:
        answer = await get_or_none(session, url(index))
        return answer is not None and answer.status == 200 and isinstance(answer.body, dict) \
            and answer.body.get("email") == f"guest{index}@example.com"

    with stopped_at_exit(worker):
        worker.start()
        async with aiohttp.ClientSession() as session, publishers_of(settings) as publishers:
            await poll(lambda: get_or_none(session, f"{worker.url}/health"),
                       lambda health: health is not None and health.status == 200,
                       timeout_s=90, what="a serving worker")
            for start in range(0, customers, 500):
                batch = []
                for index in range(start, start + 500):
                    system, doc = sample(EventKind.CUSTOMER, f"{hotel}-C{index:05d}",
                                         email=f"guest{index}@example.com", version=1,
                                         updated_fields=[])
                    batch.append(publishers[system].publish_document(
                        {**doc, "action": "created", "hotel_id": hotel}))
                await asyncio.gather(*batch)
            # Kill it mid-stream: once a few hundred are mirrored, while it writes on.
            await poll(lambda: served(session, 300), bool, timeout_s=90, interval_s=0.05,
                       what="the first customers mirrored")
            assert worker.pid is not None
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.process is not None
            worker.process.wait(timeout=10)
            worker.start()  # same data dir
            await poll(lambda: get_or_none(session, f"{worker.url}/health"),
                       lambda health: health is not None and health.status == 200,
                       timeout_s=120, what="the restarted worker serving")

            async def missing() -> list[int]:
                found = await asyncio.gather(*(served(session, index)
                                               for index in range(customers)))
                return [index for index, ok in enumerate(found) if not ok]

            await poll(missing, lambda gone: not gone, timeout_s=120, interval_s=1,
                       what="every customer served after the SIGKILL")
    log = worker.logs[-1].read_text(encoding="utf-8", errors="replace")
    assert "ConsistencyError" not in log
