"""The demo's Event Storage: a sink in the demo's process, and what it stored of the day."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import psycopg

from streams.core.exceptions import HubError
from streams.settings import HubSettings
from streams.storage.database import connect
from streams.storage.queries import chain
from streams.storage.sink import EventSink


class StoredDay:
    def __init__(self, conn: psycopg.AsyncConnection, sinking: asyncio.Task[Any]) -> None:
        self.conn = conn
        self.sinking = sinking

    async def holding(self, event_ids: set[str], *, timeout_s: float) -> None:
        """Wait until every one of `event_ids` is stored (the sink runs behind the agents)."""
        wanted = [UUID(event_id) for event_id in event_ids]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            cursor = await self.conn.execute(
                "SELECT count(DISTINCT record_id) FROM event_store WHERE record_id = ANY(%s)",
                (wanted,))
            row = await cursor.fetchone()
            stored = int(row[0]) if row else 0
            if stored >= len(wanted):
                return
            if self.sinking.done():  # it failed: say why rather than wait
                self.sinking.result()
                raise HubError("the Event Storage sink stopped before storing the day")
            if loop.time() > deadline:
                raise HubError(f"the Event Storage holds {stored} of the day's {len(wanted)} "
                               f"events after {timeout_s:g} s; is its sink stuck?")
            await asyncio.sleep(0.2)

    async def chain(self, key: str) -> list[dict[str, Any]]:
        return await chain(self.conn, key)


@contextlib.asynccontextmanager
async def stored_events(settings: HubSettings) -> AsyncIterator[StoredDay]:
    """A sink of the hub's topics into the Event Storage while the demo runs."""
    sink = EventSink(settings.acting_as("hotel-hub"))
    task = asyncio.create_task(sink.run())
    try:
        async with await connect(sink.dsn) as conn:
            day = StoredDay(conn, task)
            yield day
    finally:
        sink.stop()
        await task
