"""The registry against the real broker: durability, Confluent's client, the contract check.

Each test has its own `_schemas_test_<uuid>` topic and a free port (see conftest).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.core.exceptions import RegistryError, SchemaIncompatible
from streams.core.kinds import CONTRACT_TOPICS, EventKind, subject_of
from streams.registry import RegistryServer
from streams.registry import down as registry_down
from streams.registry import status as registry_status
from streams.registry import up as registry_up
from streams.registry.server import REGISTRY_IDENTITY
from streams.registry.service import daemon as registry_daemon
from streams.settings import HubSettings
from streams.wire.contracts import InvalidContract, check_contracts, register_contracts
from streams.wire.registry_client import SchemaRegistryClient
from tests.streams.registry.conftest import RegistryUnderTest, record, with_user

pytestmark = pytest.mark.integration

NAME = {"name": "name", "type": "string"}
V1 = record("Guest", NAME)
V2_OPTIONAL = record("Guest", NAME, {"name": "note", "type": ["null", "string"], "default": None})
VIP = {"name": "vip", "type": "int"}
V2_REQUIRED = record("Guest", NAME, VIP)


async def test_register_lookup_and_stable_ids(registry_client: SchemaRegistryClient) -> None:
    first = await registry_client.register("guest-value", V1)
    assert await registry_client.register("guest-value", V1) == first
    assert await registry_client.register("guest-copy-value", V1) == first
    assert json.loads(await registry_client.schema_by_id(first)) == json.loads(V1)
    found = await registry_client.lookup("guest-value", json.dumps(json.loads(V1), indent=2))
    assert found is not None and (found.id, found.version) == (first, 1)
    assert await registry_client.lookup("guest-value", V2_OPTIONAL) is None
    assert await registry_client.latest("nobody-value") is None
    assert await registry_client.versions("nobody-value") == []


async def test_incompatible_refused_compatible_accepted(
    registry_client: SchemaRegistryClient,
) -> None:
    await registry_client.set_compatibility("BACKWARD", "guest-value")
    v1 = await registry_client.register("guest-value", V1)
    with pytest.raises(SchemaIncompatible) as caught:
        await registry_client.register("guest-value", V2_REQUIRED)
    assert caught.value.status == 409 and caught.value.error_code == 409
    v2 = await registry_client.register("guest-value", V2_OPTIONAL)
    assert v2 != v1
    latest = await registry_client.latest("guest-value")
    assert latest is not None and (latest.version, latest.id) == (2, v2)
    assert await registry_client.versions("guest-value") == [1, 2]


async def test_a_system_reads_but_cannot_write(
    registry_under_test: RegistryUnderTest, registry_client: SchemaRegistryClient,
) -> None:
    if registry_under_test.callers is None:
        pytest.skip("security is off: the registry is open to everyone")
    first = await registry_client.register("guest-value", V1)
    async with SchemaRegistryClient(registry_under_test.system_url) as system:
        assert (await system.latest("guest-value")).id == first  # type: ignore[union-attr]
        for write in (system.register("guest-value", V2_OPTIONAL),
                      system.set_compatibility("NONE"),
                      system.set_compatibility("NONE", "guest-value")):
            with pytest.raises(RegistryError) as refused:
                await write
            assert (refused.value.status, refused.value.error_code) == (403, 40301)
    async with SchemaRegistryClient(registry_under_test.server.url,
                                    settings=HubSettings(security="none")) as anonymous:
        with pytest.raises(RegistryError) as unauthenticated:
            await anonymous.subjects()
        assert unauthenticated.value.status == 401
    assert await registry_client.versions("guest-value") == [1]


async def test_compatibility_endpoint(registry_client: SchemaRegistryClient) -> None:
    await registry_client.register("guest-value", V1)
    ok = await registry_client.check_compatibility("guest-value", V2_OPTIONAL)
    assert ok.is_compatible and ok.messages == []
    bad = await registry_client.check_compatibility("guest-value", V2_REQUIRED, version=1)
    assert not bad.is_compatible and any("vip" in m for m in bad.messages)
    every = await registry_client.check_compatibility("guest-value", V2_REQUIRED, version=None)
    assert not every.is_compatible


async def test_restart_loses_nothing(
    bootstrap_servers: str, registry_topic: str, registry_under_test: RegistryUnderTest,
    registry_kafka_auth: dict[str, Any],
) -> None:
    registry_server, callers = registry_under_test.server, registry_under_test.callers
    async with SchemaRegistryClient(registry_under_test.operator_url) as client:
        v1 = await client.register("guest-value", V1)
        v2 = await client.register("guest-value", V2_OPTIONAL)
        other = await client.register("room-value", record("Room", {"name": "n", "type": "long"}))
        await client.set_compatibility("FULL", "guest-value")
        await client.set_compatibility("FORWARD")
    await registry_server.stop()

    async with (
        RegistryServer(bootstrap_servers=bootstrap_servers, topic=registry_topic, port=0,
                       kafka_auth=registry_kafka_auth,
                       identities=callers.watched() if callers else None) as again,
        SchemaRegistryClient(with_user(again.url, callers.operator if callers else None)
                             ) as client,
    ):
        assert sorted(await client.subjects()) == ["guest-value", "room-value"]
        assert await client.versions("guest-value") == [1, 2]
        assert json.loads(await client.schema_by_id(v1)) == json.loads(V1)
        assert json.loads(await client.schema_by_id(other))["name"] == "Room"
        latest = await client.latest("guest-value")
        assert latest is not None and latest.id == v2
        assert await client.get_compatibility("guest-value") == "FULL"
        assert await client.get_compatibility() == "FORWARD"
        assert await client.get_compatibility("room-value") == "FORWARD"
        # Same schema, same id, after the restart too; a new one continues the sequence.
        assert await client.register("guest-copy-value", V1) == v1
        assert await client.register("new-value", record("New", NAME)) == max(v1, v2, other) + 1


async def test_confluent_client_registers_and_fetches(
    registry_under_test: RegistryUnderTest,
) -> None:
    # confluent_kafka.schema_registry needs the `schemaregistry` extra (authlib, cachetools).
    confluent = pytest.importorskip("confluent_kafka.schema_registry")
    ConfluentClient, Schema = confluent.SchemaRegistryClient, confluent.Schema
    callers = registry_under_test.callers
    conf = {"url": registry_under_test.server.url}
    if callers is not None:
        conf["basic.auth.user.info"] = callers.operator.user_info

    def confluent_round_trip() -> tuple[int, str, int, str]:
        client = ConfluentClient(conf)
        schema_id = client.register_schema("guest-value", Schema(V1, "AVRO"))
        fetched = client.get_schema(schema_id)
        latest = client.get_latest_version("guest-value")
        level = client.get_compatibility()
        return schema_id, fetched.schema_str, latest.version, level

    # The Confluent client is blocking; our server lives on this loop, so use a thread.
    schema_id, text, version, level = await asyncio.to_thread(confluent_round_trip)
    assert schema_id == 1 and version == 1 and level == "BACKWARD_TRANSITIVE"
    assert json.loads(text) == json.loads(V1)


# -- contracts --------------------------------------------------------------------------


def write_contracts(directory: Path, *, reservation_fields: list[dict[str, object]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for kind in CONTRACT_TOPICS:
        fields = reservation_fields if kind == EventKind.RESERVATION else [NAME]
        (directory / f"{kind}.avsc").write_text(record(kind.title(), *fields))
    return directory


async def test_check_contracts_reports_incompatible_and_passes_compatible(
    registry_client: SchemaRegistryClient, tmp_path: Path
) -> None:
    base = write_contracts(tmp_path / "v1", reservation_fields=[NAME])
    fresh = await check_contracts(registry_client, schema_dir=base)
    assert [c.is_new for c in fresh] == [True] * len(CONTRACT_TOPICS)
    ids = await register_contracts(registry_client, schema_dir=base)
    assert set(ids) == {subject_of(name) for name in CONTRACT_TOPICS}
    assert len(set(ids.values())) == len(CONTRACT_TOPICS)  # record names differ per kind

    good = write_contracts(
        tmp_path / "good",
        reservation_fields=[NAME, {"name": "note", "type": ["null", "string"], "default": None}],
    )
    checks = await check_contracts(registry_client, schema_dir=good)
    assert all(c.is_compatible and not c.is_new for c in checks)
    assert {c.level for c in checks} == {"BACKWARD_TRANSITIVE"}

    bad = write_contracts(tmp_path / "bad", reservation_fields=[NAME, VIP])
    checks = await check_contracts(registry_client, schema_dir=bad)
    broken = [c for c in checks if not c.is_compatible]
    assert [c.subject for c in broken] == ["hotel.reservation-value"]
    assert any("vip" in m for m in broken[0].messages)


async def test_bad_avsc_names_the_file(
    registry_client: SchemaRegistryClient, tmp_path: Path
) -> None:
    directory = write_contracts(tmp_path, reservation_fields=[NAME])
    (directory / "room.avsc").write_text('{"type": "record", "name": "Room", "fields": [}')
    with pytest.raises(InvalidContract, match=r"room\.avsc:1:"):
        await check_contracts(registry_client, schema_dir=directory)
    (directory / "room.avsc").write_text('{"type": "record", "name": "Room"}')
    with pytest.raises(InvalidContract, match=r"room\.avsc: not a valid Avro schema"):
        await check_contracts(registry_client, schema_dir=directory)


async def run_cli(module: str, *args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", f"from {module} import app; app()", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_schemas_cli_check_exit_codes(
    registry_under_test: RegistryUnderTest, tmp_path: Path
) -> None:
    env = {"SCHEMA_REGISTRY_URL": registry_under_test.server.url, "COLUMNS": "200"}
    if registry_under_test.callers is not None:  # the commands act as the operator
        env |= {"HOTELHUB_SECURITY_DIR": str(registry_under_test.callers.store.path.parent),
                "HOTELHUB_IDENTITY": "operator"}
    base = write_contracts(tmp_path / "v1", reservation_fields=[NAME])
    code, out = await run_cli("streams.cli.schemas", "register", "--schema-dir", str(base), env=env)
    assert code == 0, out
    assert "hotel.reservation-value: id" in out
    code, out = await run_cli("streams.cli.schemas", "check", "--schema-dir", str(base), env=env)
    assert code == 0, out
    bad = write_contracts(tmp_path / "bad", reservation_fields=[NAME, VIP])
    code, out = await run_cli("streams.cli.schemas", "check", "--schema-dir", str(bad), env=env)
    assert code == 1, out
    assert "hotel.reservation-value" in out and "INCOMPATIBLE" in out and "vip" in out


# -- the detached service ---------------------------------------------------------------


def test_service_up_twice_status_down(
    hub_settings: HubSettings, registry_topic: str, free_port: int, tmp_path: Path
) -> None:
    settings = hub_settings.model_copy(update={
        "schema_registry_url": None,  # the embedded one, whatever the environment names
        "home": tmp_path / "home",
        # The session's identities: the registry reads its topic as schema-registry, whom
        # the ACLs give `_schemas` alone. This one only replays it (it registers nothing),
        # so it may share the topic with the session's registry.
        "security_dir": hub_settings.identities_path.parent,
        "registry_port": free_port,
        "registry_topic": hub_settings.registry_topic if hub_settings.secured
        else registry_topic,
    })
    try:
        started = registry_up(settings, timeout_s=60)
        assert started.running and started.healthy and not started.external
        assert registry_up(settings).pid == started.pid  # up twice: still one process
        assert registry_status(settings).healthy
    finally:
        stopped = registry_down(settings)
    assert stopped
    after = registry_status(settings)
    assert not after.running and not after.healthy
    assert not registry_down(settings)
    found = settings.as_identity(REGISTRY_IDENTITY).credentials()
    if found is not None:  # it was schema-registry on Kafka, and its secret never logged
        log = registry_daemon(settings).log_path.read_text()
        assert f"Authenticated as {REGISTRY_IDENTITY}." in log
        assert found[1] not in log


def test_service_leaves_an_external_registry_alone(tmp_path: Path) -> None:
    settings = HubSettings(schema_registry_url="http://127.0.0.1:9", home=tmp_path)
    current = registry_up(settings)
    assert current.external and not current.running and not current.healthy
    assert not registry_down(settings)
    assert not (tmp_path / "registry").exists()
