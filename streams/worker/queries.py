"""Table queries over HTTP: the current state of rooms, customers, stays and availability.

Every worker serves these views on its Faust web port and answers for every key:
a key another worker owns is forwarded to that worker (found through the partition
assignor's table metadata, like Faust's `table_route`, but with our two-part bytes
keys), and a room listing asks each worker for the partitions it actively owns, so a
standby replica's copy is never served. While a worker's tables are restoring from
their changelogs or its partitions are moving, it answers 503 with `Retry-After`
rather than serve an incomplete table.

    GET /rooms/{hotel_id}/{room_id}
    GET /rooms/{hotel_id}?status=&type=
    GET /availability/{hotel_id}/{room_type}?from=YYYY-MM-DD&to=YYYY-MM-DD
    GET /customers/{hotel_id}/{customer_id}
    GET /reservations/{hotel_id}/{reservation_id}
    GET /health, GET /metrics

Internal hops carry `scope=local` (and for a listing, `partitions=`): the receiving
worker answers from its own active partitions only and never forwards again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import aiohttp
from faust import web
from faust.types import TableT
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import BaseModel
from yarl import URL

from streams.core.mirrored import read, states
from streams.core.query_params import (
    EntityNotFound,
    NotServing,
    OwnerUnavailable,
    QueryError,
    hotel_rooms,
    nights_param,
    room_filters,
)
from streams.core.state import (
    AvailabilityState,
    CustomerState,
    ReservationState,
    RoomState,
    table_key,
)
from streams.ops.health import health_problem
from streams.wire.partitioning import hotel_partition
from streams.worker.app import app
from streams.worker.tables import (
    customer_to_state,
    reservation_to_state,
    room_to_state,
    room_type_to_availability,
)

__all__ = ["QueryError"]

RETRY_AFTER_S = 2
FORWARD_TIMEOUT_S = 10.0
SERVED_BY = "X-Hotelhub-Served-By"
"""Response header naming the worker whose table answered (kept when forwarded)."""
SCOPE_LOCAL = "local"

Table = TableT[bytes, dict[str, object]]
M = TypeVar("M", bound=BaseModel)

TABLES: tuple[Table, ...] = (
    room_to_state, customer_to_state, reservation_to_state, room_type_to_availability,
)


# --- readiness and ownership -------------------------------------------------------------


def not_serving_reason() -> str | None:
    """Why this worker's tables may be incomplete right now, or None when they are current.

    `recovery.completed` is set once the first recovery finished (Faust never clears it);
    `in_recovery` and `rebalancing` cover every later rebalance and restore; the checks
    in `streams.ops.health` say whether processing is stuck or has died.
    """
    problem = health_problem()
    if problem is not None:
        return problem
    recovery = getattr(app.tables, "recovery", None)
    if recovery is None or not recovery.completed.is_set():
        return "tables are being restored from their changelogs"
    if app.in_recovery:
        return "tables are being restored from their changelogs"
    if app.rebalancing:
        return "partitions are being reassigned between workers"
    return None


def _require_serving() -> None:
    reason = not_serving_reason()
    if reason is not None:
        raise NotServing(f"this worker is not serving yet: {reason}")


def _changelog(table: Table) -> str:
    return str(table.changelog_topic.get_topic_name())


def _partition_count(table: Table) -> int:
    return int(table.partitions or app.conf.topic_partitions)


def partition_of(table: Table, hotel_id: str) -> int:
    """The table partition holding a hotel's keys: every table is mirrored from the hotel
    processor's state log, one partition per hotel (`streams.wire.partitioning`)."""
    return hotel_partition(hotel_id, _partition_count(table))


def active_partitions(table: Table) -> set[int]:
    """Partitions of `table` this worker owns as active (its standby copies excluded)."""
    topic = _changelog(table)
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


def _owners(table: Table) -> dict[int, URL]:
    """Partition -> URL of the worker that actively owns it, from the assignor's metadata."""
    topic = _changelog(table)
    return {
        partition: URL(url)
        for url, topics in app.router.table_metadata(table.name).items()
        for partition in topics.get(topic, ())
    }


def _ident(url: URL) -> tuple[str, int]:
    return (url.host or "", int(url.port or 80))


def _is_me(url: URL) -> bool:
    return _ident(url) == _ident(URL(str(app.conf.canonical_url)))


def _me() -> str:
    return str(app.conf.canonical_url)


# --- responses -----------------------------------------------------------------------------


def _json(view: web.View, body: Any, *, status: int = 200,
          headers: Mapping[str, str] | None = None) -> web.Response:
    return view.json(body, status=status, headers={SERVED_BY: _me(), **(headers or {})})


def _error(view: web.View, exc: QueryError) -> web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.retry else {}
    return _json(view, {"error": exc.code, "detail": str(exc)}, status=exc.status,
                 headers=headers)


def _local_query(request: web.Request) -> bool:
    return request.url.query.get("scope") == SCOPE_LOCAL


async def _get(owner: URL, request: web.Request, extra: Mapping[str, str]
               ) -> tuple[int, bytes, dict[str, str]]:
    """GET the same path from `owner` as an internal hop; status, body, headers to keep."""
    url = owner.with_path(request.url.path).with_query(
        {**request.url.query, "scope": SCOPE_LOCAL, **extra})
    try:
        async with app.http_client.get(
            url, timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
        ) as response:
            body = await response.read()
            kept = {name: response.headers[name]
                    for name in ("Content-Type", "Retry-After", SERVED_BY)
                    if name in response.headers}
            return response.status, body, kept
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OwnerUnavailable(
            f"the worker at {owner} owning this key did not answer ({type(exc).__name__})"
        ) from exc


async def _forward(view: web.View, request: web.Request, owner: URL) -> web.Response:
    status, body, headers = await _get(owner, request, {})
    content_type = headers.pop("Content-Type", "application/json")
    return view.bytes(body, status=status, headers={**headers, "Content-Type": content_type})


# --- lookups ---------------------------------------------------------------------------------


async def _elsewhere(view: web.View, request: web.Request, table: Table, hotel_id: str
                     ) -> web.Response | None:
    """None when this worker owns the hotel's partition of `table`, else the owner's answer."""
    _require_serving()
    partition = partition_of(table, hotel_id)
    if partition in active_partitions(table):
        return None
    if _local_query(request):
        raise NotServing(f"partition {partition} of {table.name} is moving to another worker")
    owner = _owners(table).get(partition)
    if owner is None or _is_me(owner):
        raise NotServing(f"partition {partition} of {table.name} has no active owner yet")
    return await _forward(view, request, owner)


async def _entity(view: web.View, request: web.Request, table: Table, hotel_id: str,
                  entity_id: str, model: type[M], missing: str) -> M | web.Response:
    """The state of one entity if this worker owns its hotel, else the owner's answer."""
    forwarded = await _elsewhere(view, request, table, hotel_id)
    if forwarded is not None:
        return forwarded
    state = read(table, table_key(hotel_id, entity_id).encode(), model)
    if state is None:
        raise EntityNotFound(missing)
    return state


def _local_rooms(hotel_id: str, status: str | None, room_type: str | None
                 ) -> list[dict[str, Any]]:
    """The hotel's rooms, filtered; this worker owns the hotel's partition."""
    return hotel_rooms(states(room_to_state), hotel_id, status, room_type)


# --- views -----------------------------------------------------------------------------------


class _Query(web.View):
    """A GET view whose refusals (`QueryError`) become JSON bodies with their status."""

    async def get(self, request: web.Request, **params: str) -> web.Response:
        try:
            return await self.answer(request, params)
        except QueryError as exc:
            return _error(self, exc)

    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        raise NotImplementedError


@app.page("/rooms/{hotel_id}/{room_id}")
class RoomQuery(_Query):
    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id, room_id = params["hotel_id"], params["room_id"]
        found = await _entity(self, request, room_to_state, hotel_id, room_id, RoomState,
                              f"no room {room_id} at hotel {hotel_id}")
        return found if not isinstance(found, BaseModel) else _json(self, found.to_json())


@app.page("/rooms/{hotel_id}")
class RoomsQuery(_Query):
    """Rooms of a hotel, from the worker that owns the hotel."""

    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id = params["hotel_id"]
        status, room_type = room_filters(request)
        forwarded = await _elsewhere(self, request, room_to_state, hotel_id)
        if forwarded is not None:
            return forwarded
        rooms = _local_rooms(hotel_id, status, room_type)
        return _json(self, {
            "hotel_id": hotel_id, "filters": {"status": status, "type": room_type},
            "count": len(rooms), "rooms": rooms,
        })


@app.page("/availability/{hotel_id}/{room_type}")
class AvailabilityQuery(_Query):
    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id, room_type = params["hotel_id"], params["room_type"]
        nights = nights_param(request)
        found = await _entity(
            self, request, room_type_to_availability, hotel_id, room_type, AvailabilityState,
            f"no availability for room type {room_type} at hotel {hotel_id}")
        if not isinstance(found, AvailabilityState):
            return found
        return _json(self, {
            "hotel_id": hotel_id, "room_type": room_type, "in_house": found.in_house,
            "from": nights[0].isoformat(), "to": nights[-1].isoformat(),
            "nights": [found.night(night) for night in nights],
        })


@app.page("/customers/{hotel_id}/{customer_id}")
class CustomerQuery(_Query):
    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id, customer_id = params["hotel_id"], params["customer_id"]
        found = await _entity(self, request, customer_to_state, hotel_id, customer_id,
                              CustomerState, f"no customer {customer_id} at hotel {hotel_id}")
        return found if not isinstance(found, BaseModel) else _json(self, found.to_json())


@app.page("/reservations/{hotel_id}/{reservation_id}")
class ReservationQuery(_Query):
    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id, reservation_id = params["hotel_id"], params["reservation_id"]
        found = await _entity(
            self, request, reservation_to_state, hotel_id, reservation_id, ReservationState,
            f"no reservation {reservation_id} at hotel {hotel_id}")
        return found if not isinstance(found, BaseModel) else _json(self, found.to_json())


@app.page("/health")
class HealthQuery(web.View):
    """200 when this worker's tables are current, 503 while they restore or move."""

    async def get(self, request: web.Request) -> web.Response:
        reason = not_serving_reason()
        body: dict[str, Any] = {
            "status": "serving" if reason is None else "recovering",
            "app_id": app.conf.id, "url": _me(),
            "active_partitions": {table.name: sorted(active_partitions(table))
                                  for table in TABLES},
        }
        if reason is not None:
            body["detail"] = reason
            return _json(self, body, status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        return _json(self, body)


@app.page("/metrics")
class MetricsQuery(web.View):
    """The process's Prometheus metrics in the text format every scraper reads."""

    async def get(self, request: web.Request) -> web.Response:
        return self.bytes(generate_latest(REGISTRY),
                          headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
