"""streams.worker.patches: each fix shown doing its work on the real broker, and `install()`
refusing a Faust or aiokafka it was not written for.

The consumers here are the ones Faust's own consumer thread creates
(`AIOKafkaConsumerThread._create_worker_consumer`) for an app that is built, never started.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.settings import HubSettings
from streams.worker import patches
from streams.worker.app import broker_credentials


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    patches.install()


def _thread(settings: HubSettings, guarantee: str) -> AIOKafkaConsumerThread:
    """The consumer thread of a new app (not started), whose consumer `_create_worker_consumer`
    makes as Faust would."""
    app = faust.App(f"{settings.topic_prefix}patches-{uuid.uuid4().hex[:6]}",
                    broker=f"kafka://{settings.bootstrap_servers}", store="memory://",
                    broker_credentials=broker_credentials(settings),
                    processing_guarantee=guarantee, autodiscover=False)
    thread = app.consumer._thread
    assert isinstance(thread, AIOKafkaConsumerThread)
    return thread


@pytest.fixture
async def topic(hub_settings: HubSettings) -> AsyncIterator[TopicPartition]:
    """A new one-partition topic: a transaction of 2 records, an aborted one of 2, one of 1:
    offsets a0 b1 [commit 2] x3 y4 [abort 5] c6 [commit 7]."""
    name = f"{hub_settings.topic_prefix}patches-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=hub_settings.bootstrap_servers,
                                **hub_settings.kafka_auth())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=hub_settings.bootstrap_servers,
                                **hub_settings.kafka_auth(),
                                transactional_id=f"{name}-tx", enable_idempotence=True)
    await producer.start()
    try:
        for values, commit in (([b"a", b"b"], True), ([b"x", b"y"], False), ([b"c"], True)):
            await producer.begin_transaction()
            for value in values:
                await producer.send_and_wait(name, value, partition=0)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    yield TopicPartition(name, 0)


async def _started(thread: AIOKafkaConsumerThread, tp: TopicPartition) -> AIOKafkaConsumer:
    consumer = thread._create_worker_consumer(thread.transport)
    consumer._group_id = None  # read only; commit nothing to the app's group
    await consumer.start()
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    thread._consumer = consumer
    return consumer


async def _read_all(consumer: AIOKafkaConsumer, tp: TopicPartition) -> list[Any]:
    records: list[Any] = []
    end = (await consumer.end_offsets([tp]))[tp]
    while await consumer.position(tp) < end:
        records += (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
    return records


def test_nothing_is_patched_at_import() -> None:
    code = ("from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as T\n"
            "from faust.transport.consumer import Consumer as C\n"
            "before = (T._highwaters, T._create_worker_consumer, T._fetch_records, C._new_offset)\n"
            "import streams.worker.patches as p\n"
            "after = (T._highwaters, T._create_worker_consumer, T._fetch_records, C._new_offset)\n"
            "assert before == after and not p.installed()\n"
            "p.install(); once = T._fetch_records; p.install()\n"
            "assert T._fetch_records is once and p.installed()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.integration
async def test_read_committed_under_at_least_once(hub_settings: HubSettings,
                                                  topic: TopicPartition) -> None:
    thread = _thread(hub_settings, "at_least_once")
    assert not thread.consumer.in_transaction  # Faust alone would read uncommitted
    consumer = await _started(thread, topic)
    try:
        assert consumer._isolation_level == "read_committed"
        # ... and the fetch wait (Faust alone: 1,500 ms) reached the started fetcher.
        assert consumer._fetcher._fetch_max_wait_ms == patches.FETCH_MAX_WAIT_MS < 1500
        values = [record.value for record in await _read_all(consumer, topic)]
    finally:
        await consumer.stop()
    assert values == [b"a", b"b", b"c"]  # never the aborted x, y


@pytest.mark.integration
async def test_highwaters_from_the_broker_before_any_fetch(hub_settings: HubSettings,
                                                           topic: TopicPartition) -> None:
    thread = _thread(hub_settings, "exactly_once")
    consumer = await _started(thread, topic)
    try:
        assert consumer.last_stable_offset(topic) is None  # what Faust alone answers from
        assert await thread._highwaters([topic]) == {topic: 8}  # past the last marker
    finally:
        await consumer.stop()


@pytest.mark.integration
async def test_commit_past_the_last_transaction_marker(hub_settings: HubSettings,
                                                       topic: TopicPartition) -> None:
    thread = _thread(hub_settings, "at_least_once")
    faust_consumer = thread.consumer
    consumer = await _started(thread, topic)
    try:
        handed: list[int] = []
        while not handed or handed[-1] < 6:
            records = await thread._fetch_records(consumer, {topic}, timeout=1.0)
            handed += [record.offset for record in records.get(topic, [])]
        assert await consumer.position(topic) == 8
    finally:
        await consumer.stop()
    assert handed == [0, 1, 6]
    acked = faust_consumer._acked
    acked[topic] = [0, 1]  # 6 not acknowledged yet: the last acknowledged + 1, as before
    assert faust_consumer._new_offset(topic) == 2
    faust_consumer._committed_offset[topic] = 2
    await faust_consumer._add_gap(topic, 2, 6)  # as Faust notes the offsets it never saw
    acked[topic] = [6]  # all acknowledged: past the marker, where the log ends (Faust: 7)
    assert faust_consumer._new_offset(topic) == 8
    faust_consumer._committed_offset[topic] = 7  # what Faust alone committed: lag 1
    assert faust_consumer._new_offset(topic) == 8


def test_refuses_another_version(monkeypatch: pytest.MonkeyPatch) -> None:
    real = patches.metadata.version
    monkeypatch.setattr(patches.metadata, "version",
                        lambda name: "0.16.0" if name == "faust-streaming" else real(name))
    monkeypatch.setattr(patches, "_installed", False)
    with pytest.raises(patches.PatchMismatch,
                       match=r"faust-streaming 0\.16\.0 is installed, but .* written for "
                             r"faust-streaming 0\.15\.3"):
        patches.install()
    assert not patches.installed()


def test_refuses_a_missing_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(AIOKafkaConsumerThread, "_highwaters")
    monkeypatch.setattr(patches, "_installed", False)
    with pytest.raises(patches.PatchMismatch,
                       match=r"faust-streaming 0\.15\.3: .*AIOKafkaConsumerThread\._highwaters "
                             r"is missing"):
        patches.install()


def test_refuses_a_changed_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Consumer, "_new_offset", lambda self, tp, generation: None)
    monkeypatch.setattr(patches, "_installed", False)
    with pytest.raises(patches.PatchMismatch,
                       match=r"Consumer\._new_offset takes \('self', 'tp', 'generation'\)"):
        patches.install()


def test_refuses_aiokafka_without_what_the_read_committed_fix_sets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = patches.inspect.getsource
    monkeypatch.setattr(patches.inspect, "getsource",
                        lambda thing: real(thing).replace("self._isolation_level", "self._iso"))
    monkeypatch.setattr(patches, "_installed", False)
    with pytest.raises(patches.PatchMismatch, match=r"aiokafka 0\.14\.0: AIOKafkaConsumer\.__init__"
                                                    r" no longer contains"):
        patches.install()


async def test_one_commit_moves_past_every_transaction_marker(hub_settings: HubSettings) -> None:
    """Records of one transaction each (a marker after every record), handed, noted and
    acknowledged as Faust's drain loop does: one commit reaches the last of them. Faust alone
    noted each record inside the gap before it, held it twice among the acknowledged offsets,
    and moved one transaction a commit."""
    faust_consumer = _thread(hub_settings, "at_least_once").consumer
    tp = TopicPartition(f"{hub_settings.topic_prefix}gaps", 0)
    faust_consumer._committed_offset[tp] = 10  # perform_seek: read offset = committed
    read = 10
    for offset in range(11, 61, 2):  # 11 [marker 12] 13 [marker 14] ... 59 [marker 60]
        if offset - read > 1:
            await faust_consumer._add_gap(tp, read + 1, offset)
        read = offset
        faust_consumer._acked[tp].append(offset)
        faust_consumer._acked_index[tp].add(offset)
    assert sorted((gap.begin, gap.end) for gap in faust_consumer._gap[tp]) == [
        (marker, marker + 1) for marker in range(12, 60, 2)]
    assert faust_consumer._new_offset(tp) == 60  # Faust alone: 14, then 16, 18 ...
    assert faust_consumer._acked[tp] == []
    assert not faust_consumer._gap[tp]


async def test_a_gap_never_holds_the_record_after_it(hub_settings: HubSettings) -> None:
    faust_consumer = _thread(hub_settings, "at_least_once").consumer
    tp = TopicPartition(f"{hub_settings.topic_prefix}gaps", 0)
    await faust_consumer._add_gap(tp, 5, 6)  # record 6 after the marker at 5
    await faust_consumer._add_gap(tp, 7, 7)  # record 7 right after 6: no gap at all
    assert [(gap.begin, gap.end) for gap in faust_consumer._gap[tp]] == [(5, 6)]
