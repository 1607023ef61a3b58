"""The registry as a running service: replay the topic, then serve HTTP on loopback."""

from __future__ import annotations

import logging
from types import TracebackType

from aiohttp import web

from streams.core.exceptions import EmbeddedServiceError
from streams.registry.app import create_app
from streams.registry.core import SchemaRegistry
from streams.registry.kafka_log import KafkaRecordLog
from streams.settings import HubSettings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


class RegistryServer:
    """An embedded registry bound to 127.0.0.1, backed by one compacted topic.

    `start()` serves only after the whole topic was replayed, so a restart answers
    with every schema, id and config it had. `port=0` picks a free port (tests).

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
    ) -> None:
        self.port = port
        self.log = KafkaRecordLog(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            replication_factor=replication_factor,
            timeout_s=timeout_s,
        )
        self.registry = SchemaRegistry(self.log)
        self._runner: web.AppRunner | None = None

    @classmethod
    def from_settings(cls, settings: HubSettings) -> RegistryServer:
        return cls(
            bootstrap_servers=settings.bootstrap_servers,
            topic=settings.registry_topic,
            port=settings.registry_port,
            replication_factor=settings.replication_factor,
            timeout_s=settings.publish_timeout_s * 3,
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        records = await self.log.start(self.registry.state)
        runner = web.AppRunner(create_app(self.registry), access_log=None)
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
        log.info("schema registry on %s from topic %s (%d records replayed)",
                 self.url, self.log.topic, records)

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
