"""Fixtures for the registry tests: in-memory log for unit tests, real broker for integration.

Integration fixtures use a unique `_schemas_test_<uuid>` topic per test and a free
port, so they never meet a running `hotelhub registry` nor each other; the topic is
deleted afterwards. With security on, the server reads its topic as the session's operator
(the broker's ACLs give `schema-registry` only `_schemas`) and checks callers against an
identity store of its own (an operator and a system, in a temp dir); `registry_client`
acts as that operator.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.core.identities import (
    Identity,
    IdentityStore,
    IssuedSecret,
    Role,
    WatchedStore,
    new_credential,
)
from streams.registry.core import SchemaRegistry
from streams.registry.server import RegistryServer
from streams.registry.state import JsonObject, RegistryState
from streams.settings import HubSettings
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


OPERATOR = "operator"


@dataclass(frozen=True)
class Callers:
    """Who may call a test's own registry: its identity store, an operator and a system."""

    store: IdentityStore
    operator: IssuedSecret
    system: IssuedSecret

    @classmethod
    def create(cls, directory: Path) -> Callers:
        store = IdentityStore(directory / "identities.json")
        secrets_dir = directory / "secrets"
        operator, operator_secret = new_credential(Identity("operator", Role.OPERATOR),
                                                   secrets_dir)
        system, system_secret = new_credential(Identity("hotel-pms", Role.SYSTEM), secrets_dir)
        store.put(operator)
        store.put(system)
        store.save()
        return cls(store, operator_secret, system_secret)

    def watched(self) -> WatchedStore:
        return WatchedStore(self.store.path, every_s=0.2)


def with_user(url: str, issued: IssuedSecret | None) -> str:
    """`url` carrying `issued`'s credentials (sent as HTTP Basic); `url` itself without."""
    return url if issued is None else url.replace("//", f"//{issued.user_info}@", 1)


@dataclass(frozen=True)
class RegistryUnderTest:
    """A test's own registry server and who may call it (None: security is off)."""

    server: RegistryServer
    callers: Callers | None

    @property
    def operator_url(self) -> str:
        """Its URL as the operator, for our client, Confluent's and the CLI alike."""
        return with_user(self.server.url, self.callers.operator if self.callers else None)

    @property
    def system_url(self) -> str:
        return with_user(self.server.url, self.callers.system if self.callers else None)


@pytest.fixture(scope="session")
def bootstrap_servers(hub_settings: HubSettings) -> str:
    return hub_settings.bootstrap_servers


@pytest.fixture(scope="session")
def registry_kafka_auth(hub_settings: HubSettings) -> dict[str, Any]:
    """What a test's registry connects to Kafka with: the operator, since its topic is the
    test's own, which the deployment's ACLs do not name (`schema-registry` owns `_schemas`:
    the session's registry and test_service_up_twice_status_down show that path)."""
    return hub_settings.as_identity(OPERATOR).kafka_auth()


@pytest.fixture
async def registry_topic(bootstrap_servers: str, registry_kafka_auth: dict[str, Any]
                         ) -> AsyncIterator[str]:
    topic = f"_schemas_test_{uuid.uuid4().hex}"
    yield topic
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **registry_kafka_auth)
    try:
        await admin.start()
        await admin.delete_topics([topic])
    except Exception:  # best effort: a leftover test topic is harmless
        pass
    finally:
        await admin.close()


@pytest.fixture
def callers(hub_settings: HubSettings, tmp_path: Path) -> Callers | None:
    return Callers.create(tmp_path / "security") if hub_settings.secured else None


@pytest.fixture
async def registry_under_test(
    bootstrap_servers: str, registry_topic: str, registry_kafka_auth: dict[str, Any],
    callers: Callers | None,
) -> AsyncIterator[RegistryUnderTest]:
    server = RegistryServer(
        bootstrap_servers=bootstrap_servers, topic=registry_topic, port=0,
        kafka_auth=registry_kafka_auth,
        identities=callers.watched() if callers is not None else None,
    )
    await server.start()
    yield RegistryUnderTest(server, callers)
    await server.stop()


@pytest.fixture
def registry_server(registry_under_test: RegistryUnderTest) -> RegistryServer:
    return registry_under_test.server


@pytest.fixture
async def registry_client(
    registry_under_test: RegistryUnderTest,
) -> AsyncIterator[SchemaRegistryClient]:
    async with SchemaRegistryClient(registry_under_test.operator_url, timeout_s=10.0) as client:
        yield client


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port
