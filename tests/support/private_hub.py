"""A Kafka node and schema registry of a test's own, which it may stop and start at will.

The session's broker (tests/conftest.py) is shared by every test and never stopped; a test
of what clients do while "the broker is down" needs a node nobody else uses:

    with private_hub(hub_settings, tmp_path) as hub:
        ...publish with hub.settings...
        hub.stop_broker()          # the process ends, its port closes; the registry stays up
        ...clients now fail...
        seconds = hub.start_broker()

It runs from its own home under `tmp` on free ports, with the same security mode and
topic prefix as `base`; the Kafka jars are `base`'s (linked, not assembled again). At the
start it grants the session's prefixed topics, groups and transactional ids as the session
does on the shared broker, registers the contracts as the operator and creates the hub's
topics. At the exit, also when the test failed, it stops the registry and the node it
started, by their own pid files; `tmp` stays the test's.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from streams.core.exceptions import EmbeddedServiceError
from streams.ops.broker import EmbeddedKafka
from streams.ops.broker.config import LOOPBACK
from streams.registry import service as registry
from streams.settings import HubSettings
from tests.support.gateway import free_port

T = TypeVar("T")

PORT_CLOSED_TIMEOUT_S = 10.0


@dataclass
class PrivateHub:
    """A running private node and registry; `settings` reach them as `base`'s identity."""

    settings: HubSettings
    name: str = "private"
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each step of the start took: broker up, registry up, grants, contracts, topics."""

    @property
    def kafka(self) -> EmbeddedKafka:
        return EmbeddedKafka(self.settings)

    def stop_broker(self) -> None:
        """Stop the node (its registry keeps running); returns once its port is closed."""
        if not self.kafka.down():
            raise EmbeddedServiceError(
                f"no private Kafka ran under {self.settings.home} to stop")
        deadline = time.monotonic() + PORT_CLOSED_TIMEOUT_S
        while _listening(self.settings.broker_port):
            if time.monotonic() > deadline:
                raise EmbeddedServiceError(
                    f"Kafka stopped but port {self.settings.broker_port} still accepts "
                    "connections")
            time.sleep(0.1)

    def start_broker(self) -> float:
        """Start the node again on the same ports and data; the seconds until it answered.

        Secured, `up` applies the identity store again; the session's grants are applied
        after the clock stops, so the time is the node's own.
        """
        began = time.monotonic()
        self.kafka.up()
        took = time.monotonic() - began
        _grant(self.settings)
        return took

    def broker_answers(self) -> bool:
        return self.kafka.status().answers


def private_settings(base: HubSettings, home: Path) -> HubSettings:
    """`base` on a node and registry of their own: `home`, free ports, embedded services.

    Security mode, topic prefix, app id and identity stay `base`'s; whatever `base` reads
    from the environment about where Kafka and the registry are, or which secret to use,
    is dropped, since the private node has its own store under `home`.
    """
    broker, controller, registry_port = _distinct_free_ports(3)
    update: dict[str, Any] = {
        "home": home,
        "broker_port": broker,
        "controller_port": controller,
        "registry_port": registry_port,
        "kafka_bootstrap_servers": None,
        "schema_registry_url": None,
        "security_dir": None,
        "kafka_ssl_cafile": None,
        "worker_data_dir": None,
    }
    # Only when set: naming them marks an identity as chosen (`HubSettings.acting_as`).
    for name in ("credentials_file", "username", "password"):
        if getattr(base, name) is not None:
            update[name] = None
    return base.model_copy(update=update)


@contextmanager
def private_hub(base: HubSettings, tmp: Path, *, name: str = "private") -> Iterator[PrivateHub]:
    """Start a private node and registry under `tmp/"home"`; stop both at the exit.

    A test running several names each: the others live in `tmp/"home-<name>"`.
    """
    home = tmp / ("home" if name == "private" else f"home-{name}")
    settings = private_settings(base, home)
    _share_jars(base, settings)
    hub = PrivateHub(settings, name)
    try:
        hub.timings["broker up"] = _timed(hub.kafka.up)
        hub.timings["registry up"] = _timed(lambda: registry.up(settings))
        hub.timings["grants"] = _timed(lambda: _grant(settings))
        operator = settings if settings.identity == "operator" else settings.as_identity(
            "operator")
        hub.timings["contracts"] = _timed(lambda: _run(lambda: _register_contracts(operator)))
        hub.timings["topics"] = _timed(lambda: _run(lambda: _create_topics(operator)))
        yield hub
    finally:
        try:
            registry.down(settings)
        finally:
            hub.kafka.down()


def _share_jars(base: HubSettings, settings: HubSettings) -> None:
    """Link `base`'s Kafka jars into the private home, assembling them there first if needed."""
    EmbeddedKafka(base).ensure_jars()
    shared = EmbeddedKafka(base).dist_dir.resolve()
    link = EmbeddedKafka(settings).dist_dir
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(shared, target_is_directory=True)


def session_deployments(settings: HubSettings) -> list[HubSettings]:
    """What tests/conftest.py `session_deployments` grants on the shared broker: the session's
    topics, with the hub's app ids under its prefix. That module sets environment variables
    when imported (a benchmark would inherit them), so it is not imported here;
    tests/streams/test_private_hub.py checks the two agree."""
    prefix = settings.topic_prefix
    return [settings.model_copy(update={"app_id": app_id})
            for app_id in (f"{prefix}hotelhub", prefix)]


def _grant(settings: HubSettings) -> None:
    """The session's grants, as tests/conftest.py `_grant_session` applies them."""
    if not settings.secured:
        return
    from streams.ops.security import sync

    sync(settings, deployments=session_deployments(settings))


async def _register_contracts(operator: HubSettings) -> None:
    from streams.wire.codec import ConfluentAvroCodec
    from streams.wire.registry_client import SchemaRegistryClient

    async with SchemaRegistryClient.from_settings(operator) as client:
        await ConfluentAvroCodec(client).register()


async def _create_topics(operator: HubSettings) -> None:
    from streams.runners.admin import ensure_topics
    from streams.wire.topics import hub_topics

    await ensure_topics(operator, hub_topics(operator))


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end, also when called from inside a running event loop."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _timed(step: Callable[[], object]) -> float:
    began = time.monotonic()
    step()
    return time.monotonic() - began


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0
