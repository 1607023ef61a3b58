"""Collects what the agents processed, so tests can wait for specific events."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from streams.core.models import HotelEvent, Refusal


class ProcessedEvents:
    """A Faust agent sink: every event an agent yields, by event_id, in arrival order."""

    def __init__(self) -> None:
        self.by_id: dict[str, HotelEvent] = {}
        self.order: list[HotelEvent] = []
        self.times: Counter[str] = Counter()
        self._changed = asyncio.Condition()

    async def __call__(self, event: HotelEvent) -> None:
        async with self._changed:
            self.by_id[str(event.event_id)] = event
            self.order.append(event)
            self.times[str(event.event_id)] += 1
            self._changed.notify_all()

    async def wait_for(self, event_ids: Iterable[object], *, times: int = 1,
                       timeout_s: float = 60) -> None:
        """Until every event was processed (at least `times` times: redeliveries count)."""
        wanted = {str(event_id) for event_id in event_ids}
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(
                lambda: all(self.times[event_id] >= times for event_id in wanted))


class Refusals:
    """Every refusal published while the tests run, by the id of the refused event."""

    def __init__(self) -> None:
        self.by_event: dict[str, Refusal] = {}
        self._changed = asyncio.Condition()

    async def add(self, refusal: Refusal) -> None:
        async with self._changed:
            self.by_event[str(refusal.refused_event_id)] = refusal
            self._changed.notify_all()

    async def wait_for(self, event_id: object, *, timeout_s: float = 60) -> Refusal:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: str(event_id) in self.by_event)
        return self.by_event[str(event_id)]


async def eventually(check: Callable[[], Awaitable[bool] | bool], *,
                     timeout_s: float = 60, interval_s: float = 0.1) -> None:
    """Wait until `check()` holds: state that follows derived events lands a little later."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(interval_s)
