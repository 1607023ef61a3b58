"""`hotelhub report`: bad input is refused in one line before anything connects; `--send`
writes exactly one send request, to the hotel's partition of the facts topic."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner

from streams.cli import app
from streams.core.reports.periods import Period
from streams.core.reports.requests import SendRequest
from streams.runners.admin import ensure_topics
from streams.settings import HubSettings
from streams.wire.partitioning import hotel_partition
from streams.wire.topics import TopicSpec, report_facts_topic
from tests.support.hotel import new_hotel_id
from tests.support.workers import isolated, worker_app_id


def assert_one_line_error(result: Any, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not a traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize("args, expected", [
    (["yearly", "--hotel", "HTL-X", "--date", "2026-10-01"], ("period", "'yearly'")),
    (["monthly", "--hotel", "HTL-X", "--date", "2026-13-01"], ("--date", "'2026-13-01'")),
    (["weekly", "--hotel", "HTL-X", "--date", "tomorrow", "--send"], ("--date", "'tomorrow'")),
])
def test_bad_period_or_date_is_refused_naming_it(
    settings_from_env: pytest.MonkeyPatch, args: list[str], expected: tuple[str, ...],
) -> None:
    # Nothing answers here: the input must be refused before anything connects.
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, ["report", *args, "--url", "http://127.0.0.1:1"])
    assert_one_line_error(result, "error:", *expected)


def test_an_unreachable_worker_is_one_line(settings_from_env: pytest.MonkeyPatch) -> None:
    settings_from_env.setenv("HOTELHUB_SECURITY", "none")
    result = CliRunner().invoke(app, ["report", "daily", "--hotel", "HTL-X", "--date",
                                      "2026-10-01", "--url", "http://127.0.0.1:1"])
    assert_one_line_error(result, "cannot reach a worker at http://127.0.0.1:1")


@pytest.fixture
def facts_settings(hub_settings: HubSettings) -> HubSettings:
    """Topics and an app id of this test's own, with the app's facts topic created."""
    own = isolated(hub_settings, "report-cli")
    own = own.model_copy(update={"app_id": worker_app_id(own, "report-cli")})
    topic = report_facts_topic(own)
    asyncio.run(ensure_topics(own, [TopicSpec(topic, own.topic_partitions)]))
    return own


def _use(monkeypatch: pytest.MonkeyPatch, settings: HubSettings) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", settings.registry_url)
    monkeypatch.setenv("HOTELHUB_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("HOTELHUB_APP_ID", settings.app_id)
    monkeypatch.setenv("HOTELHUB_TOPIC_PARTITIONS", str(settings.topic_partitions))


async def _records(settings: HubSettings, topic: str) -> list[Any]:
    """Every record of `topic`, read as the operator."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.as_identity("operator").kafka_auth(),
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                found.extend(records)
        return found
    finally:
        await consumer.stop()


@pytest.mark.integration
def test_send_writes_one_request_to_the_hotels_partition(
    settings_from_env: pytest.MonkeyPatch, facts_settings: HubSettings,
) -> None:
    _use(settings_from_env, facts_settings)
    hotel = new_hotel_id()
    result = CliRunner().invoke(app, ["report", "monthly", "--hotel", hotel, "--date",
                                      "2026-10-17", "--send", "--json"])
    assert result.exit_code == 0, result.output
    topic = report_facts_topic(facts_settings)
    partition = hotel_partition(hotel, facts_settings.topic_partitions)
    said = json.loads(result.stdout)
    assert (said["topic"], said["partition"]) == (topic, partition)

    records = asyncio.run(_records(facts_settings, topic))
    assert len(records) == 1, records
    record = records[0]
    assert (record.partition, record.offset, record.key) == (partition, said["offset"],
                                                            hotel.encode())
    assert json.loads(record.value)["fact"] == "request"
    request = SendRequest.model_validate_json(record.value)
    assert request == SendRequest(hotel_id=hotel, period=Period.MONTHLY, start=date(2026, 10, 1))


@pytest.mark.integration
def test_send_without_the_facts_topic_says_so(
    settings_from_env: pytest.MonkeyPatch, hub_settings: HubSettings,
) -> None:
    own = isolated(hub_settings, "report-cli-none")
    own = own.model_copy(update={"app_id": worker_app_id(own, "never-ran")})
    _use(settings_from_env, own)
    result = CliRunner().invoke(app, ["report", "daily", "--hotel", "HTL-X", "--date",
                                      "2026-10-17", "--send"])
    assert_one_line_error(result, f"{report_facts_topic(own)} does not exist")
