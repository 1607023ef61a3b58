"""Bad input at the registry's REST edge is a 4xx in Confluent's shape, never a 500, and a
schema the registry accepts is one the codec can use (one check, `streams.wire.avro_schema`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.core.exceptions import CodecError
from streams.registry.app import create_app
from streams.registry.compatibility import parse_schema
from streams.registry.core import SchemaRegistry
from streams.registry.exceptions import InvalidSchema
from streams.registry.state import schema_key
from streams.wire.avro_schema import MAX_SCHEMA_DEPTH, UnusableSchema, usable_schema
from streams.wire.codec import parse_schema as codec_parse_schema
from tests.streams.registry.conftest import MemoryLog, record

V1 = record("Guest", {"name": "name", "type": "string"})
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def nested_arrays(depth: int) -> str:
    text = '"string"'
    for _ in range(depth):
        text = f'{{"type":"array","items":{text}}}'
    return text


# Each is a schema that `avro` alone would take (or a text neither takes) but the codec cannot use.
UNUSABLE = {
    "type-level default": '{"type":"string","default":1}',
    "field default of the wrong type": record("R", {"name": "a", "type": "string", "default": 1}),
    "nested 3,000 levels": nested_arrays(3000),
    "brackets 3,000 deep": "[" * 3000 + "]" * 3000,
    "lone surrogate": record("R", {"name": "a", "type": "string", "doc": "\ud800"}),
}


@pytest.fixture
async def http(memory_log: MemoryLog) -> AsyncIterator[TestClient[Any, Any]]:
    registry = SchemaRegistry(memory_log)
    async with TestClient(TestServer(create_app(registry), host="127.0.0.1")) as client:
        yield client


async def post(http: TestClient[Any, Any], path: str, body: bytes,
               content_type: str = CONTENT_TYPE, method: str = "POST") -> tuple[int, Any]:
    response = await http.request(method, path, data=body,
                                  headers={"Content-Type": content_type})
    return response.status, await response.json(content_type=None)


def assert_confluent_error(answer: tuple[int, Any], status: int, code: int) -> None:
    got_status, error = answer
    assert got_status == status, error
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] == code and error["message"]


@pytest.mark.parametrize("name", list(UNUSABLE))
def test_both_sides_refuse_what_the_codec_cannot_use(name: str) -> None:
    text = UNUSABLE[name]
    with pytest.raises(UnusableSchema):
        usable_schema(text)
    with pytest.raises(InvalidSchema) as caught:
        parse_schema(text)
    assert caught.value.error_code == 42201 and len(str(caught.value)) < 1000
    with pytest.raises(CodecError):
        codec_parse_schema(text)


def test_defaults_where_avro_reads_them_are_fine() -> None:
    with_defaults = record(
        "R", {"name": "a", "type": "string", "default": "x"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"], "default": "A"},
         "default": "B"},
        {"name": "o", "type": ["null", "long"], "default": None},
    )
    assert parse_schema(with_defaults).avro is not None
    assert codec_parse_schema(with_defaults)


def test_depth_limit_leaves_room_for_real_schemas() -> None:
    assert parse_schema(nested_arrays(MAX_SCHEMA_DEPTH - 1))
    with pytest.raises(InvalidSchema, match="nested more than"):
        parse_schema(nested_arrays(MAX_SCHEMA_DEPTH + 1))


@pytest.mark.parametrize("name", list(UNUSABLE))
async def test_http_refuses_unusable_schemas_with_42201(
    http: TestClient[Any, Any], name: str
) -> None:
    body = json.dumps({"schema": UNUSABLE[name]}).encode()
    for path in ("/subjects/a-value/versions", "/subjects/a-value",
                 "/compatibility/subjects/a-value/versions/latest"):
        assert_confluent_error(await post(http, path, body), 422, 42201)


async def test_http_non_utf8_body_is_400(http: TestClient[Any, Any]) -> None:
    body = b'{"schema": "\xff\xfe"}'
    assert_confluent_error(await post(http, "/subjects/a-value/versions", body), 400, 400)
    assert_confluent_error(await post(http, "/config", body, method="PUT"), 400, 400)


@pytest.mark.parametrize("charset", ["klingon", "rot13", "hex"])
async def test_http_unknown_charset_is_415(http: TestClient[Any, Any], charset: str) -> None:
    body = json.dumps({"schema": V1}).encode()
    answer = await post(http, "/subjects/a-value/versions", body,
                        f"application/json; charset={charset}")
    assert_confluent_error(answer, 415, 415)


async def test_http_a_declared_charset_is_honoured(http: TestClient[Any, Any]) -> None:
    body = json.dumps({"schema": V1}).encode("utf-16")
    status, answer = await post(http, "/subjects/a-value/versions", body,
                                "application/json; charset=utf-16")
    assert (status, answer) == (200, {"id": 1})


async def test_http_body_nested_3000_levels_is_400(http: TestClient[Any, Any]) -> None:
    body = ('{"schema": ' + "[" * 3000 + "]" * 3000 + "}").encode()
    assert_confluent_error(await post(http, "/subjects/a-value/versions", body), 400, 400)


async def test_http_nothing_was_registered_by_the_bad_requests(
    http: TestClient[Any, Any], memory_log: MemoryLog
) -> None:
    for text in UNUSABLE.values():
        await post(http, "/subjects/a-value/versions", json.dumps({"schema": text}).encode())
    assert memory_log.records == []


def test_replay_keeps_a_version_registered_before_the_rules() -> None:
    log = MemoryLog()
    old = UNUSABLE["field default of the wrong type"]
    log.records.append((schema_key("old-value", 1),
                        {"subject": "old-value", "version": 1, "id": 7, "schema": old,
                         "deleted": False}))
    state = log.replay()
    assert [v.id for v in state.versions("old-value")] == [7]
