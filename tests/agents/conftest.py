"""One in-process hub for the agent tests: the real app on the real broker and registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.kinds import REFUSAL_TOPIC, System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings, get_settings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from streams.worker.hub import Hub
from tests.support.collector import ProcessedEvents, Refusals
from tests.support.http import Answer, get
from tests.support.tables import HubTables, hub_tables
from tests.support.workers import free_port

MAX_RECORD_BYTES = 12_000
"""Small enough that a 300-night booking's availability record is too large to write."""
ALLOWANCE_HOTEL = f"HTL-ALLOW-{uuid.uuid4().hex[:6].upper()}"
"""The one hotel of the in-process hub that may sell one DBL room more than it has."""


@pytest.fixture(scope="session")
def hub_env(hub_settings: HubSettings, tmp_path_factory: pytest.TempPathFactory) -> HubSettings:
    """Settings for the in-process hub: the test cluster and a consumer group of its own.

    Also put in the environment, which the worker processes some tests start inherit.
    """
    os.environ.update({
        "KAFKA_BOOTSTRAP_SERVERS": hub_settings.bootstrap_servers,
        "SCHEMA_REGISTRY_URL": hub_settings.registry_url,
        "HOTELHUB_APP_ID": f"{hub_settings.topic_prefix}hotelhub-{uuid.uuid4().hex[:8]}",
        "HOTELHUB_WEB_PORT": str(free_port()),
        "HOTELHUB_WORKER_DATA_DIR": str(Path(tmp_path_factory.mktemp("worker"))),
        "HOTELHUB_TOPIC_PARTITIONS": str(hub_settings.topic_partitions),
        "HOTELHUB_OVERBOOKING": json.dumps({ALLOWANCE_HOTEL: {"DBL": "1"}}),
        "HOTELHUB_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES),
        # Refuse at once what needs an unknown room type, room or customer, so each rule's
        # refusal can be shown; tests/agents/test_waiting.py runs the default grace.
        "HOTELHUB_ORDER_GRACE_S": "0",
    })
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
async def running(hub_env: HubSettings) -> AsyncIterator[tuple[Hub, ProcessedEvents]]:
    """The hub with every agent, started in this loop, and what its event agents processed."""
    from streams.worker.run import running_hub

    collector = ProcessedEvents()
    async with running_hub(hub_env.as_identity("hotel-hub"), sinks=[collector]) as hub:
        hub_tables(hub)  # so `HubTables.mirrored()` knows which hub to wait for
        yield hub, collector


@pytest.fixture(scope="session")
def processed(running: tuple[Hub, ProcessedEvents]) -> ProcessedEvents:
    return running[1]


@pytest.fixture(scope="session")
def hub(running: tuple[Hub, ProcessedEvents]) -> Hub:
    return running[0]


@pytest.fixture(scope="session")
async def registry(hub_env: HubSettings) -> AsyncIterator[SchemaRegistryClient]:
    async with SchemaRegistryClient(hub_env.registry_url) as client:
        yield client


@pytest.fixture(scope="session")
async def publishers(
    hub_env: HubSettings, registry: SchemaRegistryClient
) -> AsyncIterator[dict[System, HotelEventPublisher]]:
    started = {
        system: HotelEventPublisher(system=system, registry=registry, settings=hub_env)
        for system in System
    }
    for publisher in started.values():
        await publisher.start()
    yield started
    for publisher in started.values():
        await publisher.stop()


@pytest.fixture(scope="session")
async def refusals(hub_env: HubSettings, processed: ProcessedEvents) -> AsyncIterator[Refusals]:
    """Refusals published from now on, read as the origin systems would (read_committed)."""
    collector = Refusals()
    consumer = AIOKafkaConsumer(bootstrap_servers=hub_env.bootstrap_servers, **hub_env.kafka_auth(),
                                isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(hub_env.topic(REFUSAL_TOPIC), p)
                  for p in range(hub_env.topic_partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    async with SchemaRegistryClient(hub_env.registry_url) as client:
        codec = ConfluentAvroCodec(client)

        async def collect() -> None:
            async for record in consumer:
                await collector.add(await codec.decode_refusal(record.value))

        task = asyncio.create_task(collect())
        yield collector
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await consumer.stop()


@pytest.fixture
async def ask(hub_env: HubSettings, processed: ProcessedEvents) -> AsyncIterator[Any]:
    """GET a path of the in-process hub's web port (the app runs: `processed` started it)."""
    base = f"http://127.0.0.1:{hub_env.web_port}"
    async with aiohttp.ClientSession() as session:
        async def ask(path: str) -> Answer:
            return await get(session, base + path)

        yield ask


@pytest.fixture(scope="session")
def tables(hub: Hub) -> HubTables:
    """The running hub's committed state and query tables."""
    return hub_tables(hub)
