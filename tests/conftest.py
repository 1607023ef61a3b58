"""Session fixtures: where integration tests find Kafka and the schema registry.

`hub_settings` decides once per session, cheapest honest option first:

1. `KAFKA_BOOTSTRAP_SERVERS` is set (CI, or your own cluster): use it, and
   `SCHEMA_REGISTRY_URL` if set; start nothing.
2. A Docker engine answers: one Redpanda container (Kafka API + its schema registry).
3. Otherwise the hub's embedded Kafka and registry, under `HOTELHUB_HOME`/ports from the
   environment. Only what this session started is stopped at its end, so a broker you
   started with `hotelhub broker up` keeps running.

Every session works in topics of its own (`HOTELHUB_TOPIC_PREFIX`, set here before any
hub module reads the settings) and deletes them at its end, so sessions sharing a
cluster never read each other's events and a long-lived broker does not fill up.

Security is on unless HOTELHUB_SECURITY=none: test code acts as the operator identity
(`HOTELHUB_IDENTITY`) unless it picks another (workers and hubs are hotel-hub, publishers
their system). The session makes sure the default identities exist and grants its own
prefixed topics, groups and transactional ids (`_grant_session`); at its end those grants
go with its topics.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import hypothesis  # noqa: F401  (see below)
import pytest

# hypothesis is imported above, before any test runs: its pytest plugin otherwise imports
# it lazily at the terminal summary, where CPython 3.11 can fail compiling it ("AST
# constructor recursion depth mismatch") while finalizers of unclosed clients run.

os.environ.setdefault("HOTELHUB_TOPIC_PREFIX", f"test-{uuid.uuid4().hex[:8]}.")
os.environ.setdefault("HOTELHUB_IDENTITY", "operator")

from streams.settings import HubSettings  # after the prefix above: settings read it

REDPANDA_IMAGE = "docker.redpanda.com/redpandadata/redpanda:v26.1.14"


def _docker_answers(*, timeout_s: float = 5.0) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "info"], capture_output=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def hub_settings() -> Iterator[HubSettings]:
    settings = HubSettings()
    if not settings.uses_embedded_broker:
        _grant_session(settings)
        sessions = iter([settings])
    elif _docker_answers():
        sessions = _redpanda_settings()
    else:
        sessions = _embedded_settings(settings)
    for session in sessions:
        try:
            asyncio.run(_register_contracts(session))
            yield session
        finally:
            asyncio.run(_delete_topics(session))
            _forget_session_grants(session)


def session_deployments(settings: HubSettings) -> list[HubSettings]:
    """What the session grants: its topics, with the hub's app ids under its prefix.

    `<prefix>hotelhub` covers `worker_app_id`'s; the prefix itself the app ids tests choose
    of other shapes (`<prefix>app`, `<prefix>rocks-stale`, ...). Systems get only the
    session's event topics, as the policies say.
    """
    prefix = settings.topic_prefix
    return [settings.model_copy(update={"app_id": app_id})
            for app_id in (f"{prefix}hotelhub", prefix)]


def _grant_session(settings: HubSettings) -> None:
    """Default identities, their credentials and this session's ACLs on the broker."""
    if not settings.secured:
        return
    from streams.ops.security import sync

    # The embedded node's `up` made the default identities; an external cluster has them.
    sync(settings, deployments=session_deployments(settings))


def _forget_session_grants(settings: HubSettings) -> None:
    if not settings.secured or not settings.topic_prefix.startswith("test-"):
        return
    from streams.ops.security import forget_prefix

    try:
        forget_prefix(settings, settings.topic_prefix)
    except Exception as exc:  # cleanup must not hide the session's real outcome
        print(f"could not delete the ACLs of {settings.topic_prefix}*: {exc}")


async def _register_contracts(settings: HubSettings) -> None:
    """Register the contracts once, as the operator, as `hotelhub schemas register` does in a
    deployment: with security on, workers and publishers only look them up."""
    from streams.wire.codec import ConfluentAvroCodec
    from streams.wire.registry_client import SchemaRegistryClient

    operator = settings if settings.identity == "operator" else settings.as_identity("operator")
    async with SchemaRegistryClient.from_settings(operator) as client:
        await ConfluentAvroCodec(client).register()


async def _delete_topics(settings: HubSettings) -> None:
    """Remove this session's topics (its prefix also starts its apps' internal topics)."""
    from aiokafka.admin import AIOKafkaAdminClient

    if not settings.topic_prefix.startswith("test-"):
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.as_identity("operator").kafka_auth())
    try:
        await admin.start()
        ours = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if ours:
            await admin.delete_topics(ours)
    except Exception as exc:  # cleanup must not hide the session's real outcome
        print(f"could not delete test topics {settings.topic_prefix}*: {exc}")
    finally:
        await admin.close()


def _redpanda_settings() -> Iterator[HubSettings]:
    from testcontainers.community.kafka import RedpandaContainer

    # The test container runs without SASL (docker-compose.redpanda.yml shows it with).
    os.environ["HOTELHUB_SECURITY"] = "none"
    with RedpandaContainer(REDPANDA_IMAGE) as redpanda:
        yield HubSettings(
            KAFKA_BOOTSTRAP_SERVERS=redpanda.get_bootstrap_server(),
            SCHEMA_REGISTRY_URL=redpanda.get_schema_registry_address(),
        )


def _embedded_settings(settings: HubSettings) -> Iterator[HubSettings]:
    from streams.ops.broker import EmbeddedKafka
    from streams.registry import service as registry

    kafka = EmbeddedKafka(settings)
    kafka_started = kafka.daemon.pid() is None
    kafka.up()
    _grant_session(settings)
    registry_started = False
    try:
        if settings.uses_embedded_registry:
            registry_started = not registry.status(settings).running
            registry.up(settings)
        yield settings
    finally:
        if registry_started:
            registry.down(settings)
        if kafka_started:
            kafka.down()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The URL of an Event Storage database of this session's own (tests.support.postgres:
    DATABASE_URL's server, a Docker container or the embedded PostgreSQL), dropped at its end."""
    from tests.support.postgres import session_database_url

    with session_database_url(HubSettings(), docker=_docker_answers) as url:
        yield url


@pytest.fixture(scope="session")
def storage_dsn(database_url: str) -> str:
    """The session's Event Storage database with its schema migrated (what a sink makes)."""
    from streams.storage.schema import migrate

    migrate(database_url)
    return database_url
