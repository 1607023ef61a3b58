"""`GET /events` and `GET /events/chain/{key}`: the Event Storage over HTTP, paged.

The same filters as `hotelhub events`. The operator and the hub see every record; a system
sees the records it sent or was sent, of the hotels its identity sees. The gateway opens
its PostgreSQL pool on the first question, so a gateway runs (and publishes, and delivers)
without an Event Storage; asking then is a 503 that says why.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at
# definition, and `authenticated` is a local of history_router.
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from streams.core.exceptions import HubError
from streams.gateway.callers import Caller
from streams.gateway.errors import ApiError
from streams.settings import HubSettings
from streams.storage.database import StorageError, first_line
from streams.storage.queries import MAX_PAGE, EventFilter, QueryError, chain, find

POOL_SIZE = 4
POOL_WAIT_S = 5.0


class StoredRecordsOut(BaseModel):
    records: list[dict[str, Any]] = Field(
        description="Oldest first: record_id, record_type, event_id, occurred_at, event_type, "
        "hotel_id, entity_type, entity_id, source_system, targets, correlation_id, "
        "causation_id, created_offline, payload (the record as JSON), kafka coordinates.")
    next: str | None = Field(default=None,
                             description="Pass as `cursor` for the next page; null on the last.")


class StoredHistory:
    """The gateway's pool to the Event Storage, opened on first use."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self._pool: AsyncConnectionPool | None = None

    async def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            pool = AsyncConnectionPool(self.settings.database_dsn(), min_size=1,
                                       max_size=POOL_SIZE, open=False,
                                       kwargs={"autocommit": True})
            try:
                await pool.open(wait=True, timeout=POOL_WAIT_S)
            except Exception as exc:  # PoolTimeout wraps the server's own refusal
                await pool.close()
                raise StorageError(f"the Event Storage does not answer: {first_line(exc)}"
                                   ) from exc
            self._pool = pool
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def unusable(exc: psycopg.Error) -> StorageError:
    """A database error as the caller should read it: the schema missing (no sink has run
    its migrations yet), or the server gone."""
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return StorageError("the Event Storage has no schema yet: `hotelhub storage migrate` "
                            "(or a starting sink) creates it")
    return StorageError(f"the Event Storage failed: {first_line(exc)}")


def scope(caller: Caller, where: EventFilter) -> EventFilter:
    """`where` narrowed to what `caller` may read; a hotel it may not see is refused."""
    identity = caller.identity
    if where.hotel_id is not None and not identity.sees_hotel(where.hotel_id):
        raise PermissionError(f"identity {caller.name} may not see hotel {where.hotel_id}")
    if caller.sees_everything:
        return where
    hotels = None if "*" in identity.hotels else tuple(identity.hotels)
    return EventFilter(**{**where.__dict__, "visible_to": caller.name, "hotel_ids": hotels})


def history_router(history: StoredHistory, authenticated: Any) -> APIRouter:
    """The routes; `authenticated` is the app's dependency that yields the `Caller`."""
    router = APIRouter(tags=["event storage"])

    def refused(exc: Exception) -> ApiError:
        if isinstance(exc, PermissionError):
            return ApiError(403, "forbidden", str(exc))
        if isinstance(exc, QueryError):
            return ApiError(422, "invalid_request", str(exc))
        return ApiError(503, "storage_unavailable", str(exc))

    @router.get("/events", response_model=StoredRecordsOut, operation_id="listStoredEvents")
    async def list_events(
        who: authenticated,
        hotel_id: str | None = None,
        entity_type: str | None = None,
        entity_id: str | None = None,
        kind: Annotated[str | None, Query(
            description="reservation, reservation.created, refusal, delivery ...")] = None,
        record_type: str | None = None,
        since: Annotated[datetime | None, Query(description="ISO 8601 with offset")] = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: str | None = None,
    ) -> StoredRecordsOut:
        """Records of the Event Storage matching every filter given, a page at a time."""
        try:
            where = scope(who, EventFilter(
                hotel_id=hotel_id, entity_type=entity_type, entity_id=entity_id, kind=kind,
                record_type=record_type, since=since, until=until))
            async with (await history.pool()).connection() as conn:
                page = await find(conn, where, limit=limit, after=cursor)
        except psycopg.Error as exc:
            raise refused(unusable(exc)) from None
        except (PermissionError, HubError) as exc:
            raise refused(exc) from None
        return StoredRecordsOut(records=page.records, next=page.next)

    @router.get("/events/chain/{key}", response_model=StoredRecordsOut,
                operation_id="storedEventChain")
    async def event_chain(who: authenticated, key: str) -> StoredRecordsOut:
        """A booking's chain: by correlation id, reservation id or event id."""
        try:
            async with (await history.pool()).connection() as conn:
                found = await chain(conn, key, visible_to=None if who.sees_everything
                                    else who.name)
        except psycopg.Error as exc:
            raise refused(unusable(exc)) from None
        except HubError as exc:
            raise refused(exc) from None
        if not who.sees_everything:
            found = [row for row in found if row["hotel_id"] is None
                     or who.identity.sees_hotel(row["hotel_id"])]
        return StoredRecordsOut(records=found)

    return router
