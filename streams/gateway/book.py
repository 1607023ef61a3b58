"""The webhook endpoints every gateway process shares, kept in a compacted Kafka topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from streams.gateway.compacted import CompactedView
from streams.gateway.endpoints import (
    Endpoint,
    EndpointStatus,
    check_url,
    new_endpoint_id,
    new_secret,
    now,
)
from streams.gateway.patterns import Patterns
from streams.settings import HubSettings
from streams.wire.topics import webhook_endpoints_topic


class EndpointBook:
    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.view = CompactedView(settings, webhook_endpoints_topic(settings), name="endpoints")
        self._endpoints: dict[str, Endpoint] = {}
        self._patterns: dict[str, Patterns] = {}
        self.view.on_change(self._changed)

    def _changed(self, key: str, value: dict[str, Any] | None) -> None:
        """Parsed once per change, not per event dispatched."""
        if value is None:
            self._endpoints.pop(key, None)
            self._patterns.pop(key, None)
        else:
            endpoint = Endpoint.model_validate(value)
            self._endpoints[key] = endpoint
            self._patterns[key] = Patterns(endpoint.patterns)

    async def start(self) -> None:
        await self.view.start()

    async def stop(self) -> None:
        await self.view.stop()

    @property
    def ready(self) -> bool:
        return self.view.ready

    def on_change(self, listener: Callable[[str, Endpoint | None], None]) -> None:
        self.view.on_change(lambda key, _: listener(key, self._endpoints.get(key)))

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self._endpoints.get(endpoint_id)

    def all(self) -> list[Endpoint]:
        return list(self._endpoints.values())

    def wants(self, endpoint: Endpoint, ce_type: str, *, critical: bool) -> bool:
        """CRITICAL events go to every endpoint of their audience; others by pattern."""
        patterns = self._patterns.get(endpoint.id)
        return critical or (patterns is not None and patterns.matches(ce_type))

    def of_system(self, system: str) -> list[Endpoint]:
        return [endpoint for endpoint in self.all() if endpoint.system == system]

    async def create(self, system: str, url: str, patterns: list[str], description: str
                     ) -> Endpoint:
        Patterns(patterns)
        await self._check_url(url)
        moment = now()
        endpoint = Endpoint(id=new_endpoint_id(), system=system, url=url, patterns=patterns,
                            secret=new_secret(), description=description, created_at=moment,
                            updated_at=moment)
        await self._write(endpoint)
        return endpoint

    async def update(self, endpoint: Endpoint, **changes: Any) -> Endpoint:
        if "patterns" in changes:
            Patterns(changes["patterns"])
        if "url" in changes:
            await self._check_url(changes["url"])
        if changes.get("status") == EndpointStatus.ACTIVE:
            changes.setdefault("status_reason", None)
        updated = endpoint.model_copy(update={**changes, "updated_at": now()})
        await self._write(updated)
        return updated

    async def set_status(self, endpoint_id: str, status: EndpointStatus, reason: str | None
                         ) -> Endpoint | None:
        endpoint = self.get(endpoint_id)
        if endpoint is None or endpoint.status == status:
            return endpoint
        return await self.update(endpoint, status=status, status_reason=reason)

    async def delete(self, endpoint_id: str) -> None:
        await self.view.put(endpoint_id, None)

    async def _check_url(self, url: str) -> None:
        """In a thread: it may resolve the host, which must not stall the event loop."""
        await asyncio.to_thread(check_url, url, self.settings.webhook_allowed_networks)

    async def _write(self, endpoint: Endpoint) -> None:
        await self.view.put(endpoint.id, endpoint.model_dump(mode="json"))
