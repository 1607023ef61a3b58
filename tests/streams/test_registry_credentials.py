"""Credentials in SCHEMA_REGISTRY_URL travel as HTTP Basic auth and never appear in errors,
dead-letter headers, statuses or CLI output."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from streams.cli import app as cli
from streams.core.exceptions import CodecError, HubError, RegistryError
from streams.core.kinds import EventKind
from streams.registry import status as registry_status
from streams.settings import HubSettings, get_settings, redacted_url
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.deadletters import deadletter_headers
from streams.wire.registry_client import SchemaRegistryClient, split_credentials
from tests.support.events import sample

USER, SECRET = "api-key-7", "s3cr%2Ft"  # the password holds an encoded '/'
DEAD = f"http://{USER}:{SECRET}@127.0.0.1:9"  # nothing listens on port 9


def assert_clean(text: str) -> None:
    assert SECRET not in text and "s3cr/t" not in text and USER not in text, text


@pytest.mark.parametrize(
    ("url", "shown"),
    [("http://u:p@h:8081", "http://***@h:8081"),
     ("https://u:p@a/ss@h/path", "https://***@h/path"),
     ("http://a:b@h1:1,http://c:d@h2:2", "http://***@h1:1,http://***@h2:2"),
     ("http://127.0.0.1:8081", "http://127.0.0.1:8081")],
)
def test_redacted_url(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_credentials_are_split_off_as_basic_auth() -> None:
    base, auth = split_credentials(f"http://{USER}:{SECRET}@127.0.0.1:8081/prefix")
    assert base == "http://127.0.0.1:8081/prefix" and auth is not None
    assert split_credentials("http://127.0.0.1:8081") == ("http://127.0.0.1:8081", None)


def test_settings_repr_hides_the_url() -> None:
    settings = HubSettings(SCHEMA_REGISTRY_URL=DEAD)
    assert_clean(repr(settings))
    assert_clean(str(settings))
    assert_clean(settings.registry_url_redacted)


async def test_unreachable_registry_errors_are_clean() -> None:
    async with SchemaRegistryClient(DEAD, timeout_s=2) as client:
        assert_clean(client.url)
        with pytest.raises(RegistryError) as caught:
            await client.register("a-value", '"string"')
        assert "127.0.0.1:9" in str(caught.value)
        assert_clean(str(caught.value))
        codec = ConfluentAvroCodec(client)
        with pytest.raises(HubError) as decoded:
            await codec.decode(EventKind.ROOM, b"\x00\x00\x00\x00\x07rest")
        assert_clean(str(decoded.value))
        for name, value in deadletter_headers(topic="hotel.room", partition=0, offset=1,
                                              error=decoded.value):
            assert_clean(f"{name}={value.decode()}")


def test_deadletter_headers_redact_whatever_error_they_are_given() -> None:
    error = CodecError(f"registry {DEAD} said no")
    assert_clean(repr(deadletter_headers(topic="t", partition=0, offset=0, error=error)))


@pytest.fixture
async def echo_registry() -> AsyncIterator[tuple[str, list[str | None]]]:
    """A registry stand-in that records the Authorization headers it gets; schema 1 is
    "string", anything else answers 500 with a non-JSON body."""
    seen: list[str | None] = []

    async def schema(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.match_info["id"] == "1":
            return web.json_response({"schema": '"string"'})
        return web.Response(status=500, text=f"boom at {request.url}")

    server_app = web.Application()
    server_app.router.add_get("/schemas/ids/{id}", schema)
    async with TestServer(server_app, host="127.0.0.1") as server:
        yield f"http://{USER}:{SECRET}@127.0.0.1:{server.port}", seen


async def test_userinfo_is_sent_as_basic_auth_not_in_the_url(
    echo_registry: tuple[str, list[str | None]],
) -> None:
    url, seen = echo_registry
    async with SchemaRegistryClient(url) as client:
        assert await client.schema_by_id(1) == '"string"'
        with pytest.raises(RegistryError) as caught:
            await client.schema_by_id(2)
    expected = base64.b64encode(f"{USER}:s3cr/t".encode()).decode()
    assert seen == [f"Basic {expected}", f"Basic {expected}"]
    assert_clean(str(caught.value))


@pytest.fixture
def dead_registry_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", DEAD)
    monkeypatch.setenv("COLUMNS", "300")
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_registry_status_is_clean(dead_registry_env: pytest.MonkeyPatch) -> None:
    current = registry_status(get_settings())
    assert current.external and not current.healthy
    assert_clean(current.describe())
    for args in (["registry", "status"], ["registry", "up"], ["registry", "down"]):
        result = CliRunner().invoke(cli, args)
        assert "127.0.0.1:9" in result.output
        assert_clean(result.output)


def test_schemas_commands_are_clean(dead_registry_env: pytest.MonkeyPatch) -> None:
    for args in (["schemas", "check"], ["schemas", "register"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "unreachable" in result.output
        assert_clean(result.output)


@pytest.mark.integration
def test_publish_is_clean(dead_registry_env: pytest.MonkeyPatch,
                          hub_settings: HubSettings) -> None:
    dead_registry_env.setenv("KAFKA_BOOTSTRAP_SERVERS", hub_settings.bootstrap_servers)
    _, room = sample(EventKind.ROOM)
    result = CliRunner().invoke(cli, ["publish", "-", "--system", "hotel-pms"],
                                input=json.dumps(room))
    assert result.exit_code == 2 and "unreachable" in result.output
    assert_clean(result.output)
