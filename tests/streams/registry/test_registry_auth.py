"""The registry's REST API with security on: HTTP Basic against the identity store, every
identity reads, only the operator writes; rotation and revocation without a restart; no
secret in any log line. In process (in-memory log), so no broker is needed."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from streams.cli.schemas import acting_settings
from streams.cli.schemas import app as schemas_cli
from streams.core.exceptions import RegistryError
from streams.core.identities import (
    Identity,
    IdentityStore,
    IssuedSecret,
    Role,
    WatchedStore,
    new_credential,
    without_credential,
)
from streams.core.kinds import CONTRACT_TOPICS, EventKind, subject_of
from streams.registry.app import create_app
from streams.registry.core import SchemaRegistry
from streams.registry.server import REGISTRY_IDENTITY, RegistryServer
from streams.registry.service import _child_env, healthy
from streams.settings import HubSettings, get_settings
from streams.wire.codec import ConfluentAvroCodec, ContractNotRegistered
from streams.wire.registry_client import SchemaRegistryClient
from tests.streams.registry.conftest import Callers, MemoryLog, record, with_user

V1 = record("Guest", {"name": "name", "type": "string"})
V2 = record("Guest", {"name": "name", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": None})
WATCH_S = 0.2
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

# One request of each route group: (method, path, body).
READS = [
    ("GET", "/", None),
    ("GET", "/schemas/types", None),
    ("GET", "/schemas/ids/1", None),
    ("GET", "/schemas/ids/1/schema", None),
    ("GET", "/schemas/ids/1/versions", None),
    ("GET", "/schemas/ids/1/subjects", None),
    ("GET", "/subjects", None),
    ("GET", "/subjects/guest-value/versions", None),
    ("GET", "/subjects/guest-value/versions/latest", None),
    ("GET", "/subjects/guest-value/versions/1/schema", None),
    ("POST", "/subjects/guest-value", {"schema": V1}),
    ("GET", "/config", None),
    ("GET", "/config/guest-value?defaultToGlobal=true", None),
    ("POST", "/compatibility/subjects/guest-value/versions", {"schema": V2}),
    ("POST", "/compatibility/subjects/guest-value/versions/latest", {"schema": V2}),
]
WRITES = [
    ("POST", "/subjects/guest-value/versions", {"schema": V2}),
    ("PUT", "/config", {"compatibility": "NONE"}),
    ("PUT", "/config/guest-value", {"compatibility": "NONE"}),
    ("DELETE", "/config/guest-value", None),
    ("DELETE", "/config", None),
    ("PUT", "/mode", {"mode": "READONLY"}),
    ("DELETE", "/subjects/guest-value/versions/1", None),
    ("DELETE", "/subjects/guest-value", None),
]


@dataclass
class Secured:
    """An in-process registry with auth on, its identity store and issued secrets."""

    url: str
    store: IdentityStore
    secrets_dir: Path
    operator: IssuedSecret
    system: IssuedSecret

    def settings(self, identity: str, **more: object) -> HubSettings:
        """Acting as `identity` with its secret file (whatever the session's env says)."""
        chosen: dict[str, object] = {"credentials_file": None, "username": None,
                                     "password": None, **more}
        return HubSettings(security="sasl", security_dir=self.store.path.parent,
                           identity=identity, schema_registry_url=self.url, **chosen)


def basic(username: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    callers = Callers.create(tmp_path / "security")
    app = create_app(SchemaRegistry(MemoryLog()),
                     identities=WatchedStore(callers.store.path, every_s=WATCH_S))
    async with TestServer(app, host="127.0.0.1") as server:
        yield Secured(f"http://127.0.0.1:{server.port}", callers.store,
                      tmp_path / "security" / "secrets", callers.operator, callers.system)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def assert_no_secret(text: str, *issued: IssuedSecret) -> None:
    for secret in issued:
        assert secret.secret not in text
        assert base64.b64encode(secret.user_info.encode()).decode() not in text
    assert not re.search(r"Basic [A-Za-z0-9+/]{8,}", text)  # no Authorization value at all


async def call(url: str, method: str, path: str, body: object, **headers: str
               ) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.request(
            method, path, headers={"Content-Type": CONTENT_TYPE, **headers},
            content=None if body is None else json.dumps(body))


async def seed(secured: Secured) -> None:
    """guest-value version 1 (id 1), registered by the operator."""
    answer = await call(secured.url, "POST", "/subjects/guest-value/versions", {"schema": V1},
                        **basic(secured.operator.username, secured.operator.secret))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("method", "path", "body"), READS + WRITES)
async def test_no_credentials_is_401_on_every_route(
    secured: Secured, method: str, path: str, body: object,
) -> None:
    answer = await call(secured.url, method, path, body)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith('Basic realm="')
    assert answer.json()["error_code"] == 40101


@pytest.mark.parametrize("header", [
    "Basic " + base64.b64encode(b"hotel-pms.1:wrong").decode(),
    "Basic " + base64.b64encode(b"hotel-pms:wrong").decode(),
    "Basic " + base64.b64encode(b"nobody.1:wrong").decode(),
    "Basic not-base64!",
    "Bearer abc",
])
async def test_wrong_credentials_are_401(secured: Secured, header: str) -> None:
    answer = await call(secured.url, "GET", "/subjects", None, Authorization=header)
    assert answer.status_code == 401 and answer.json()["error_code"] == 40101
    assert "WWW-Authenticate" in answer.headers


async def test_a_system_reads_but_never_writes(secured: Secured,
                                               logs: pytest.LogCaptureFixture) -> None:
    await seed(secured)
    system = basic(secured.system.username, secured.system.secret)
    for method, path, body in READS:
        answer = await call(secured.url, method, path, body, **system)
        assert answer.status_code == 200, (method, path, answer.text)
    for method, path, body in WRITES:
        answer = await call(secured.url, method, path, body, **system)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error_code"] == 40301
        assert "operator" in answer.json()["message"]
    # Nothing changed: the level and the subject are as the operator left them.
    level = await call(secured.url, "GET", "/config", None, **system)
    assert level.json() == {"compatibilityLevel": "BACKWARD_TRANSITIVE"}
    versions = await call(secured.url, "GET", "/subjects/guest-value/versions", None, **system)
    assert versions.json() == [1]
    assert_no_secret(logs.text, secured.operator, secured.system)


async def test_the_operator_writes(secured: Secured, logs: pytest.LogCaptureFixture) -> None:
    await seed(secured)
    operator = basic(secured.operator.username, secured.operator.secret)
    for method, path, body in WRITES:
        if path == "/mode":
            continue  # not served by this registry (404), yet never a 403 for the operator
        answer = await call(secured.url, method, path, body, **operator)
        assert answer.status_code == 200, (method, path, answer.text)
    mode = await call(secured.url, "PUT", "/mode", {"mode": "READONLY"}, **operator)
    assert mode.status_code == 404
    # The identity's name works as the username too (any of its credentials' secrets).
    by_name = await call(secured.url, "GET", "/subjects", None,
                         **basic("operator", secured.operator.secret))
    assert by_name.status_code == 200
    assert "by operator" in logs.text  # an audit line names who changed what
    assert_no_secret(logs.text, secured.operator, secured.system)


async def until_status(url: str, headers: dict[str, str], wanted: int,
                       timeout_s: float = 5.0) -> float:
    """Seconds until GET /subjects answers `wanted`."""
    started = time.monotonic()
    while True:
        answer = await call(url, "GET", "/subjects", None, **headers)
        if answer.status_code == wanted:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, (wanted, answer.status_code)
        await asyncio.sleep(0.05)


async def test_rotation_overlap_then_revocation(secured: Secured,
                                                logs: pytest.LogCaptureFixture) -> None:
    old = secured.system
    # A long-lived client acting as hotel-pms reads its (old) secret at its first request.
    client = SchemaRegistryClient(secured.url, settings=secured.settings("hotel-pms"))
    assert await client.subjects() == []
    with secured.store.editing() as store:
        rotated, new = new_credential(store.require("hotel-pms"), secured.secrets_dir)
        store.put(rotated)
    await until_status(secured.url, basic(new.username, new.secret), 200)
    for headers in (basic(old.username, old.secret), basic(new.username, new.secret),
                    basic("hotel-pms", old.secret), basic("hotel-pms", new.secret)):
        assert (await call(secured.url, "GET", "/subjects", None, **headers)).status_code == 200

    async with client:
        with secured.store.editing() as store:
            store.put(without_credential(store.require("hotel-pms"), old.username,
                                         secured.secrets_dir))
        took = await until_status(secured.url, basic(old.username, old.secret), 401)
        assert took <= WATCH_S + 1.0
        assert (await call(secured.url, "GET", "/subjects", None,
                           **basic("hotel-pms", old.secret))).status_code == 401
        assert (await call(secured.url, "GET", "/subjects", None,
                           **basic(new.username, new.secret))).status_code == 200
        # Its old secret got a 401; it re-read its secret file and retried with the new one.
        assert await client.subjects() == []
    assert_no_secret(logs.text, secured.operator, old, new)


async def test_our_client_and_codec(secured: Secured, logs: pytest.LogCaptureFixture) -> None:
    kind = EventKind.ROOM
    async with SchemaRegistryClient.from_settings(secured.settings("hotel-pms")) as system:
        codec = ConfluentAvroCodec(system)
        with pytest.raises(ContractNotRegistered) as missing:
            await codec.register(kind)
        text = str(missing.value)
        assert subject_of(kind) in text and "hotelhub schemas register" in text
        with pytest.raises(RegistryError) as refused:
            await system.set_compatibility("NONE")
        assert refused.value.status == 403

        async with SchemaRegistryClient.from_settings(secured.settings("operator")) as operator:
            registered = await ConfluentAvroCodec(operator).register()
        assert set(registered) == set(CONTRACT_TOPICS)
        # Now the system finds the contracts without any right to write.
        assert await codec.register(kind) == {kind: registered[kind]}

    # Credentials in the URL win over the settings' identity.
    user_url = with_user(secured.url, secured.operator)
    async with SchemaRegistryClient(user_url, settings=secured.settings("hotel-pms")) as client:
        assert await client.set_compatibility("FULL", subject_of(kind)) == "FULL"

    # A wrong secret: a clear 401 naming no secret.
    bad = secured.settings("hotel-pms", username="hotel-pms.1", password="nope")
    async with SchemaRegistryClient.from_settings(bad) as client:
        with pytest.raises(RegistryError) as caught:
            await client.subjects()
    assert caught.value.status == 401 and "credentials" in str(caught.value)
    assert "nope" not in str(caught.value)
    assert_no_secret(logs.text, secured.operator, secured.system)


async def test_confluent_client_with_basic_auth_user_info(
    secured: Secured, logs: pytest.LogCaptureFixture,
) -> None:
    confluent = pytest.importorskip("confluent_kafka.schema_registry")
    error_class = confluent.error.SchemaRegistryError

    def as_operator() -> int:
        client = confluent.SchemaRegistryClient({
            "url": secured.url, "basic.auth.user.info": secured.operator.user_info})
        return int(client.register_schema("guest-value", confluent.Schema(V1, "AVRO")))

    def as_system() -> tuple[str, int, int]:
        client = confluent.SchemaRegistryClient({
            "url": secured.url, "basic.auth.user.info": secured.system.user_info})
        latest = client.get_latest_version("guest-value")
        refused = 200
        try:
            client.register_schema("guest-value", confluent.Schema(V2, "AVRO"))
        except error_class as exc:
            refused = int(exc.http_status_code)
        return client.get_schema(latest.schema_id).schema_str, latest.version, refused

    def anonymous() -> int:
        client = confluent.SchemaRegistryClient({"url": secured.url})
        try:
            client.get_subjects()
        except error_class as exc:
            return int(exc.http_status_code)
        return 200

    # The Confluent client blocks; our server lives on this loop, so run it in a thread.
    schema_id = await asyncio.to_thread(as_operator)
    text, version, refused = await asyncio.to_thread(as_system)
    assert schema_id == 1 and version == 1 and json.loads(text) == json.loads(V1)
    assert refused == 403
    assert await asyncio.to_thread(anonymous) == 401
    assert_no_secret(logs.text, secured.operator, secured.system)


async def test_schemas_cli_acts_as_operator(
    secured: Secured, settings_from_env: pytest.MonkeyPatch,
) -> None:
    env = settings_from_env
    for name in ("HOTELHUB_IDENTITY", "HOTELHUB_CREDENTIALS_FILE", "HOTELHUB_USERNAME",
                 "HOTELHUB_PASSWORD"):
        env.delenv(name, raising=False)
    env.setenv("SCHEMA_REGISTRY_URL", secured.url)
    env.setenv("HOTELHUB_SECURITY", "sasl")
    env.setenv("HOTELHUB_SECURITY_DIR", str(secured.store.path.parent))
    env.setenv("COLUMNS", "300")
    assert acting_settings().identity == "operator"
    runner = CliRunner()
    registered = await asyncio.to_thread(runner.invoke, schemas_cli, ["register"])
    assert registered.exit_code == 0, registered.output
    assert f"{subject_of(EventKind.ROOM)}: id" in registered.output
    checked = await asyncio.to_thread(runner.invoke, schemas_cli, ["check"])
    assert checked.exit_code == 0, checked.output

    # A system chosen explicitly reads, but its register is refused with a clear error.
    as_system = await asyncio.to_thread(
        runner.invoke, schemas_cli, ["check", "--identity", "hotel-pms"])
    assert as_system.exit_code == 0, as_system.output
    env.setenv("HOTELHUB_IDENTITY", "hotel-pms")
    get_settings.cache_clear()
    assert acting_settings().identity == "hotel-pms"
    v2_dir = secured.store.path.parent / "v2"
    v2_dir.mkdir()
    for kind in CONTRACT_TOPICS:
        (v2_dir / f"{kind}.avsc").write_text(record(f"{kind.title()}X",
                                                    {"name": "n", "type": "string"}))
    refused = await asyncio.to_thread(
        runner.invoke, schemas_cli, ["register", "--schema-dir", str(v2_dir)])
    assert refused.exit_code == 1 and "may only read" in refused.output
    for output in (registered.output, checked.output, as_system.output, refused.output):
        assert_no_secret(output, secured.operator, secured.system)


def test_security_none_keeps_the_registry_open(tmp_path: Path) -> None:
    open_settings = HubSettings(security="none", home=tmp_path)
    server = RegistryServer.from_settings(open_settings)
    assert server.identities is None
    secured_settings = HubSettings(security="sasl", security_dir=tmp_path / "security",
                                   identity="operator")
    Callers.create(secured_settings.identities_path.parent)
    new_credential(Identity(REGISTRY_IDENTITY, Role.REGISTRY), secured_settings.secrets_dir)
    assert RegistryServer.from_settings(secured_settings).identities is not None
    assert RegistryServer.from_settings(secured_settings).log._auth["sasl_plain_username"] \
        == f"{REGISTRY_IDENTITY}.1"


async def test_open_registry_needs_no_credentials() -> None:
    app = create_app(SchemaRegistry(MemoryLog()))
    async with TestServer(app, host="127.0.0.1") as server:
        url = f"http://127.0.0.1:{server.port}"
        answer = await call(url, "POST", "/subjects/guest-value/versions", {"schema": V1})
        assert answer.status_code == 200
        assert (await call(url, "PUT", "/config", {"compatibility": "NONE"})).status_code == 200


async def test_liveness_needs_no_secret(secured: Secured) -> None:
    assert await asyncio.to_thread(healthy, secured.url)


def test_the_service_is_given_no_secret(tmp_path: Path) -> None:
    settings = HubSettings(security="sasl", home=tmp_path, username="operator.1",
                           password="top-secret-value", identity="operator")
    env = _child_env(settings)
    assert env["HOTELHUB_IDENTITY"] == REGISTRY_IDENTITY
    assert env["HOTELHUB_SECURITY"] == "sasl"
    assert env["HOTELHUB_SECURITY_DIR"] == str(settings.identities_path.parent)
    assert "top-secret-value" not in json.dumps(env)
    assert not {"HOTELHUB_USERNAME", "HOTELHUB_PASSWORD"} & set(env)
