"""Registry behaviour and its Confluent REST shapes over an in-memory log (no broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.core.exceptions import SchemaIncompatible
from streams.registry.app import create_app
from streams.registry.compatibility import CompatibilityLevel
from streams.registry.core import SchemaRegistry
from streams.registry.exceptions import (
    StoreError,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotSoftDeleted,
)
from tests.streams.registry.conftest import MemoryLog, record

V1 = record("Guest", {"name": "name", "type": "string"})
V2 = record("Guest", {"name": "name", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": None})
V2_BREAKING = record("Guest", {"name": "name", "type": "string"}, {"name": "vip", "type": "int"})


async def test_register_is_idempotent_and_ids_are_global(registry: SchemaRegistry) -> None:
    first = await registry.register("a-value", V1)
    again = await registry.register("a-value", V1)
    elsewhere = await registry.register("b-value", V1)
    assert (first.id, first.version) == (again.id, again.version) == (1, 1)
    assert elsewhere.id == first.id and elsewhere.version == 1
    second = await registry.register("a-value", V2)
    assert (second.id, second.version) == (2, 2)


async def test_incompatible_schema_is_refused_and_nothing_written(
    registry: SchemaRegistry, memory_log: MemoryLog
) -> None:
    await registry.register("a-value", V1)
    with pytest.raises(SchemaIncompatible) as caught:
        await registry.register("a-value", V2_BREAKING)
    assert caught.value.status == 409 and caught.value.error_code == 409
    assert "vip" in str(caught.value)
    assert len(memory_log.records) == 1


async def test_failed_write_changes_nothing_in_memory(
    registry: SchemaRegistry, memory_log: MemoryLog
) -> None:
    memory_log.fail_next = True
    with pytest.raises(StoreError) as caught:
        await registry.register("a-value", V1)
    assert caught.value.error_code == 50001
    assert registry.state.subject_names() == []
    assert (await registry.register("a-value", V1)).id == 1


async def test_replaying_the_log_restores_everything(
    registry: SchemaRegistry, memory_log: MemoryLog
) -> None:
    await registry.register("a-value", V1)
    await registry.register("a-value", V2)
    await registry.register("b-value", V2)
    await registry.set_level(CompatibilityLevel.FULL, "b-value")
    await registry.set_level(CompatibilityLevel.NONE)
    await registry.delete_version("a-value", "1", permanent=False)

    restarted = SchemaRegistry(memory_log, memory_log.replay())
    assert restarted.state.subject_names() == ["a-value", "b-value"]
    assert [v.version for v in restarted.live_versions("a-value")] == [2]
    assert restarted.get_version("b-value", "latest").id == 2
    assert restarted.schema_by_id(1).identity == registry.schema_by_id(1).identity
    assert restarted.level("b-value") is CompatibilityLevel.FULL
    assert restarted.level() is CompatibilityLevel.NONE
    # A new schema after restart gets the next id, not a reused one.
    third = await restarted.register("c-value", record("Other", {"name": "x", "type": "long"}))
    assert third.id == 3


async def test_soft_then_permanent_delete(registry: SchemaRegistry) -> None:
    await registry.register("a-value", V1)
    await registry.register("a-value", V2)
    with pytest.raises(SubjectNotSoftDeleted):
        await registry.delete_subject("a-value", permanent=True)
    assert await registry.delete_subject("a-value", permanent=False) == [1, 2]
    assert registry.state.subject_names() == []
    assert registry.state.subject_names(deleted=True) == ["a-value"]
    registry.schema_by_id(1)  # ids survive a soft delete, so old data still decodes
    with pytest.raises(SubjectSoftDeleted):
        await registry.delete_subject("a-value", permanent=False)
    assert await registry.delete_subject("a-value", permanent=True) == [1, 2]
    assert registry.state.subject_names(deleted=True) == []


async def test_version_delete_needs_soft_first(registry: SchemaRegistry) -> None:
    await registry.register("a-value", V1)
    with pytest.raises(VersionNotSoftDeleted):
        await registry.delete_version("a-value", "1", permanent=True)
    assert await registry.delete_version("a-value", "latest", permanent=False) == 1
    assert await registry.delete_version("a-value", "1", permanent=True) == 1
    # Re-registering after a hard delete starts the subject over.
    assert (await registry.register("a-value", V1)).version == 1


# -- HTTP shapes ------------------------------------------------------------------------


@pytest.fixture
async def http(registry: SchemaRegistry) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(registry), host="127.0.0.1")) as client:
        yield client


async def call(
    http: TestClient[Any, Any], method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    response = await http.request(
        method, path, json=body,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    assert response.content_type == "application/vnd.schemaregistry.v1+json"
    return response.status, await response.json(content_type=None)


async def test_http_register_lookup_and_fetch(http: TestClient[Any, Any]) -> None:
    assert await call(http, "GET", "/") == (200, {})
    assert await call(http, "GET", "/schemas/types") == (200, ["AVRO"])
    assert await call(http, "POST", "/subjects/a-value/versions", {"schema": V1}) == (
        200, {"id": 1},
    )
    status, found = await call(http, "POST", "/subjects/a-value", {"schema": V1})
    assert status == 200 and (found["subject"], found["version"], found["id"]) == ("a-value", 1, 1)
    status, latest = await call(http, "GET", "/subjects/a-value/versions/latest")
    assert status == 200 and latest["id"] == 1 and latest.get("schemaType", "AVRO") == "AVRO"
    status, by_id = await call(http, "GET", "/schemas/ids/1")
    assert status == 200 and by_id["schema"] == latest["schema"]
    assert await call(http, "GET", "/schemas/ids/1/versions") == (
        200, [{"subject": "a-value", "version": 1}],
    )
    raw = await http.get("/subjects/a-value/versions/1/schema")
    assert await raw.json(content_type=None) == {
        "type": "record", "name": "Guest", "namespace": "test",
        "fields": [{"name": "name", "type": "string"}],
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", "/subjects/a-value/versions/9", None, 404, 40402),
        ("GET", "/schemas/ids/99", None, 404, 40403),
        ("POST", "/subjects/a-value", {"schema": '"long"'}, 404, 40403),
        ("GET", "/config/a-value", None, 404, 40408),
        ("POST", "/subjects/a-value/versions", {"schema": "{bad"}, 422, 42201),
        ("GET", "/subjects/a-value/versions/0", None, 422, 42202),
        ("GET", "/subjects/a-value/versions/x", None, 422, 42202),
        ("PUT", "/config", {"compatibility": "SIDEWAYS"}, 422, 42203),
        ("POST", "/subjects/a-value/versions", {"schema": V2_BREAKING}, 409, 409),
    ],
)
async def test_http_errors_have_confluent_shape(
    http: TestClient[Any, Any], method: str, path: str, body: Any, status: int, code: int
) -> None:
    await call(http, "POST", "/subjects/a-value/versions", {"schema": V1})
    got_status, error = await call(http, method, path, body)
    assert got_status == status
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] == code and error["message"]


async def test_http_subject_not_found_message(http: TestClient[Any, Any]) -> None:
    assert await call(http, "GET", "/subjects/x/versions") == (
        404, {"error_code": 40401, "message": "Subject 'x' not found."},
    )


async def test_http_config(http: TestClient[Any, Any]) -> None:
    default = {"compatibilityLevel": "BACKWARD_TRANSITIVE"}
    assert await call(http, "GET", "/config") == (200, default)
    assert await call(http, "GET", "/config/a-value?defaultToGlobal=true") == (
        200, {"compatibilityLevel": "BACKWARD_TRANSITIVE"},
    )
    assert await call(http, "PUT", "/config/a-value", {"compatibility": "full"}) == (
        200, {"compatibility": "FULL"},
    )
    assert await call(http, "GET", "/config/a-value") == (200, {"compatibilityLevel": "FULL"})
    assert await call(http, "PUT", "/config", {"compatibility": "NONE"}) == (
        200, {"compatibility": "NONE"},
    )
    assert await call(http, "DELETE", "/config/a-value") == (200, {"compatibilityLevel": "FULL"})
    assert await call(http, "GET", "/config/a-value?defaultToGlobal=true") == (
        200, {"compatibilityLevel": "NONE"},
    )


async def test_http_compatibility_endpoint(http: TestClient[Any, Any]) -> None:
    await call(http, "POST", "/subjects/a-value/versions", {"schema": V1})
    path = "/compatibility/subjects/a-value/versions/latest"
    assert await call(http, "POST", path, {"schema": V2}) == (200, {"is_compatible": True})
    status, verbose = await call(http, "POST", path + "?verbose=true", {"schema": V2_BREAKING})
    assert status == 200 and verbose["is_compatible"] is False
    assert any("vip" in message for message in verbose["messages"])
    status, every = await call(
        http, "POST", "/compatibility/subjects/a-value/versions?verbose=true", {"schema": V2}
    )
    assert (status, every) == (200, {"is_compatible": True, "messages": []})


async def test_http_deletes(http: TestClient[Any, Any]) -> None:
    await call(http, "POST", "/subjects/a-value/versions", {"schema": V1})
    await call(http, "POST", "/subjects/a-value/versions", {"schema": V2})
    assert await call(http, "DELETE", "/subjects/a-value/versions/2") == (200, 2)
    assert await call(http, "GET", "/subjects/a-value/versions") == (200, [1])
    assert await call(http, "DELETE", "/subjects/a-value") == (200, [1])
    assert (await call(http, "DELETE", "/subjects/a-value"))[1]["error_code"] == 40404
    assert await call(http, "DELETE", "/subjects/a-value?permanent=true") == (200, [1, 2])
    assert await call(http, "GET", "/subjects") == (200, [])
    assert (await call(http, "GET", "/schemas/ids/1"))[1]["error_code"] == 40403
