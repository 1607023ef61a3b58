"""Collects what the agents processed, so tests can wait for specific events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from streams.models import HotelEvent


class ProcessedEvents:
    """A Faust agent sink: every event an agent yields, by event_id, in arrival order."""

    def __init__(self) -> None:
        self.by_id: dict[str, HotelEvent] = {}
        self.order: list[HotelEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: HotelEvent) -> None:
        async with self._changed:
            self.by_id[str(event.event_id)] = event
            self.order.append(event)
            self._changed.notify_all()

    async def wait_for(self, event_ids: Iterable[object], *, timeout_s: float = 60) -> None:
        wanted = {str(event_id) for event_id in event_ids}
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: wanted <= self.by_id.keys())
