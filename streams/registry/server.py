"""The registry as a running service: replay the topic, then serve HTTP on loopback.

With security on (`HOTELHUB_SECURITY=sasl`), it reads and writes its topic as the
identity `schema-registry` and answers only requests with valid HTTP Basic credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from streams.core.exceptions import EmbeddedServiceError
from streams.core.identities import WatchedStore
from streams.registry.app import create_app
from streams.registry.core import SchemaRegistry
from streams.registry.kafka_log import KafkaRecordLog
from streams.settings import HubSettings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
REGISTRY_IDENTITY = "schema-registry"
"""The identity the registry's own Kafka clients authenticate as (role REGISTRY)."""


class RegistryServer:
    """An embedded registry bound to 127.0.0.1, backed by one compacted topic.

    `start()` serves only after the whole topic was replayed, so a restart answers
    with every schema, id and config it had. `port=0` picks a free port (tests).
    `kafka_auth` is what its Kafka clients connect with; `identities` turns HTTP
    authentication on (None: everyone may do anything, as `HOTELHUB_SECURITY=none`).

    Example:
        async with RegistryServer(bootstrap_servers="127.0.0.1:9092", port=0) as server:
            print(server.url)
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str = "_schemas",
        port: int = 8081,
        replication_factor: int = 1,
        timeout_s: float = 30.0,
        kafka_auth: Mapping[str, Any] | None = None,
        identities: WatchedStore | None = None,
    ) -> None:
        self.port = port
        self.log = KafkaRecordLog(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            replication_factor=replication_factor,
            timeout_s=timeout_s,
            kafka_auth=kafka_auth,
        )
        self.registry = SchemaRegistry(self.log)
        self.identities = identities
        self._runner: web.AppRunner | None = None

    @classmethod
    def from_settings(
        cls, settings: HubSettings, *, identity: str = REGISTRY_IDENTITY
    ) -> RegistryServer:
        """The registry these settings describe; secured, it is `identity` on Kafka (by
        default `schema-registry`, with its own secret file, whatever identity the settings
        act as) and checks callers against the identity store."""
        identities = None
        if settings.secured:
            if not settings.identities_path.exists():
                log.warning("no identity store at %s yet: every request is refused until "
                            "it exists (hotelhub broker up creates it)", settings.identities_path)
            identities = WatchedStore(settings.identities_path)
        return cls(
            bootstrap_servers=settings.bootstrap_servers,
            topic=settings.registry_topic,
            port=settings.registry_port,
            replication_factor=settings.replication_factor,
            timeout_s=settings.publish_timeout_s * 3,
            # Plaintext when security is off, whoever the identity is.
            kafka_auth=settings.as_identity(identity).kafka_auth(),
            identities=identities,
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        records = await self.log.start(self.registry.state)
        # No access log: it is not needed, and nothing of a request's headers is logged.
        runner = web.AppRunner(create_app(self.registry, identities=self.identities),
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self.log.stop()
            raise EmbeddedServiceError(
                f"schema registry cannot listen on {HOST}:{self.port}: {exc}"
            ) from exc
        self._runner = runner
        bound = runner.addresses[0]
        self.port = int(bound[1])
        log.info("schema registry on %s from topic %s (%d records replayed), %s",
                 self.url, self.log.topic, records,
                 "open to everyone" if self.identities is None
                 else f"HTTP Basic against {self.identities.path}")

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.log.stop()

    async def __aenter__(self) -> RegistryServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
