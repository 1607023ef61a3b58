"""Lag monitoring can trust: a worker that has processed everything shows lag 0 in both its
consumer groups on the topics written in transactions, and so does the exported gauge.

The hotel processor (group `<app>-hotels`) reads `<app>.hotel-events`, which it writes itself
in transactions; the Faust app (group `<app>`) mirrors `<app>.hotel-state`, written in the
same transactions. Each of their partitions ends with a commit marker no record occupies
(checked below), so a group committing "last record + 1" would read lag 1 there for ever.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from streams.ops.lag import Lag, LagExporter, group_lag, hub_groups
from streams.settings import HubSettings
from streams.wire.topics import hotel_events_topic, state_topic
from tests.support.hotel import hotels_covering, publish_hotel, publishers_of
from tests.support.outside import health, until
from tests.support.workers import isolated, stopped_at_exit, worker_group

pytestmark = pytest.mark.integration


async def _markers_at_end(settings: HubSettings, tps: list[TopicPartition]) -> list[str]:
    """The partitions of `tps` whose last offset is *not* a transaction marker (want [])."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp] - 1)
        wrong = []
        for tp in tps:
            async with asyncio.timeout(10):
                while (position := await consumer.position(tp)) < ends[tp]:
                    records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
                    if records:
                        wrong.append(f"{tp} ends with record {records[-1].offset}")
                        break
            assert position == ends[tp] or wrong
        return wrong
    finally:
        await consumer.stop()


async def test_both_groups_reach_lag_zero(hub_settings: HubSettings, tmp_path: Path) -> None:
    own = isolated(hub_settings, "lag")
    # No report ticks: they are records of their own in `<app>.report-facts`, written by the
    # clock, and one landing between the two readings below would make them differ.
    [worker] = worker_group(own, "lag", tmp_path, count=1,
                            extra_env={"HOTELHUB_REPORT_TICK_S": "0"})
    app = own.model_copy(update={"app_id": worker.env["HOTELHUB_APP_ID"]})
    groups = hub_groups(app)
    transactional = {
        groups[0]: [TopicPartition(state_topic(app), p) for p in range(app.topic_partitions)],
        groups[1]: [TopicPartition(hotel_events_topic(app), p)
                    for p in range(app.topic_partitions)],
    }
    with stopped_at_exit(worker):
        worker.start()
        async with aiohttp.ClientSession() as session:
            await until([worker], lambda: health(session, worker),
                        lambda answer: answer is not None and answer.status == 200,
                        "healthy worker", timeout_s=120)
        async with publishers_of(own) as publishers:
            for hotel_id in hotels_covering(own.topic_partitions):
                await publish_hotel(publishers, hotel_id, count=3)

        def settled(lag: Lag) -> bool:
            return all((group, tp) in lag for group, tps in transactional.items()
                       for tp in tps) and not any(lag.values())

        lag = await until([worker], lambda: group_lag(app, groups), settled,
                          "lag 0 on every partition of both groups", timeout_s=90)

    assert await _markers_at_end(app, [tp for tps in transactional.values() for tp in tps]) == []
    exported = await LagExporter(app).refresh()
    assert exported == lag
    for group, tps in transactional.items():
        for tp in tps:
            assert REGISTRY.get_sample_value("hotelhub_consumer_group_lag_records", {
                "group": group, "topic": tp.topic, "partition": str(tp.partition)}) == 0
