"""Fixtures for the registry tests: in-memory log for unit tests, real broker for integration.

Integration fixtures use a unique `_schemas_test_<uuid>` topic per test and a free
port, so they never meet a running `hotelhub registry` nor each other; the topic is
deleted afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.registry.core import SchemaRegistry
from streams.registry.server import RegistryServer
from streams.registry.state import JsonObject, RegistryState
from streams.wire.registry_client import SchemaRegistryClient


class MemoryLog:
    """A `RecordLog` that keeps records in a list; replaying it is a restart without Kafka."""

    def __init__(self) -> None:
        self.records: list[tuple[JsonObject, JsonObject | None]] = []
        self.fail_next = False

    async def append(self, key: JsonObject, value: JsonObject | None) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk on fire")
        # Round-trip through JSON, as Kafka would.
        self.records.append(
            (json.loads(json.dumps(key)), None if value is None else json.loads(json.dumps(value)))
        )

    def replay(self) -> RegistryState:
        state = RegistryState()
        for key, value in self.records:
            state.apply(key, value)
        return state


def record(name: str, *fields: JsonObject) -> str:
    """A record schema text with the given fields."""
    return json.dumps({"type": "record", "name": name, "namespace": "test", "fields": list(fields)})


@pytest.fixture
def memory_log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def registry(memory_log: MemoryLog) -> SchemaRegistry:
    return SchemaRegistry(memory_log)


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


@pytest.fixture
async def registry_topic(bootstrap_servers: str) -> AsyncIterator[str]:
    topic = f"_schemas_test_{uuid.uuid4().hex}"
    yield topic
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        await admin.delete_topics([topic])
    except Exception:  # best effort: a leftover test topic is harmless
        pass
    finally:
        await admin.close()


@pytest.fixture
async def registry_server(
    bootstrap_servers: str, registry_topic: str
) -> AsyncIterator[RegistryServer]:
    server = RegistryServer(bootstrap_servers=bootstrap_servers, topic=registry_topic, port=0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def registry_client(registry_server: RegistryServer) -> AsyncIterator[SchemaRegistryClient]:
    async with SchemaRegistryClient(registry_server.url, timeout_s=10.0) as client:
        yield client


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port
