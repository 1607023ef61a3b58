"""Everything one gateway process runs, started and stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from streams.gateway.book import EndpointBook
from streams.gateway.callers import Callers
from streams.gateway.messages import EventTopics, MessageReader
from streams.gateway.publishing import Publishing
from streams.gateway.webhooks import WebhookDispatcher
from streams.ops.lag import LagExporter, hub_groups
from streams.ops.registry_probe import PROBE_EVERY_S, RegistryProbe
from streams.runners.admin import ensure_topics
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.topics import gateway_topics, hub_topics, webhook_group

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.registry = SchemaRegistryClient.from_settings(settings)
        self.codec = ConfluentAvroCodec(self.registry)
        self.topics = EventTopics(settings)
        self.reader = MessageReader(self.codec, self.topics)
        self.callers = Callers(settings)
        self.book = EndpointBook(settings)
        self.publishing = Publishing(settings, self.registry)
        self.webhooks = WebhookDispatcher(settings, reader=self.reader, book=self.book,
                                          callers=self.callers, codec=self.codec)
        # The worker's groups too: the gateway runs while no worker does, and lag behind a
        # stopped worker is exactly what the backlog alert must see.
        self.lag = LagExporter(settings, [webhook_group(settings), *hub_groups(settings),
                                          settings.storage_group])
        self._lag_task: asyncio.Task[None] | None = None
        self.registry_probe = RegistryProbe(settings)
        self._probe_task: asyncio.Task[None] | None = None
        self.ready = False

    async def start(self) -> None:
        await ensure_topics(self.settings, [*hub_topics(self.settings),
                                            *gateway_topics(self.settings)])
        await self.codec.register()
        await self.book.start()
        await self.publishing.start()
        await self.webhooks.start()
        self._lag_task = asyncio.create_task(self._refresh_lag(), name="gateway lag")
        self._probe_task = asyncio.create_task(self._probe_registry(),
                                               name="gateway registry probe")
        self.ready = True
        log.info("gateway ready")

    async def stop(self) -> None:
        self.ready = False
        for task in (self._lag_task, self._probe_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for part in (self.webhooks, self.publishing, self.book):
            with contextlib.suppress(Exception):
                await part.stop()
        await self.registry.aclose()

    async def _refresh_lag(self) -> None:
        while True:
            await self.lag.refresh()
            await asyncio.sleep(self.settings.lag_export_interval_s)

    async def _probe_registry(self) -> None:
        while True:
            await self.registry_probe.probe()
            await asyncio.sleep(PROBE_EVERY_S)

    def problem(self) -> str | None:
        """Why the gateway is not ready, or None."""
        if not self.ready:
            return "starting"
        if not self.book.ready:
            return "webhook endpoints not read"
        if not self.webhooks.started:
            return "webhook dispatcher stopped"
        return None
