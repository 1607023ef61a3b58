"""Table queries over HTTP: the current state of rooms, customers, stays and availability.

Every worker serves these views on its Faust web port and answers for every key: a key
another worker owns is forwarded to that worker (`streams.worker.routing`,
`streams.worker.forwarding`). While a worker's tables are restoring from their changelogs
or its partitions are moving, it answers 503 with `Retry-After` rather than serve an
incomplete table.

    GET /rooms/{hotel_id}/{room_id}
    GET /rooms/{hotel_id}?status=&type=
    GET /availability/{hotel_id}/{room_type}?from=YYYY-MM-DD&to=YYYY-MM-DD
    GET /customers/{hotel_id}/{customer_id}
    GET /reservations/{hotel_id}/{reservation_id}
    GET /reservations/{hotel_id}?arriving=YYYY-MM-DD&departing=YYYY-MM-DD
    GET /health, GET /metrics

Who may ask what is `streams.worker.auth`'s: with security on, HTTP Basic credentials of an
identity that sees the hotel in the path (else 401, or 403 naming the hotel); `/metrics`
needs one that sees every hotel; `/health` is open but adds its detail only for credentials.
Each page is declared with its access below, and no other page is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp.web import Application as AioApplication
from faust import web
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import BaseModel

from streams.core.mirrored import read, states
from streams.core.query_params import (
    EntityNotFound,
    NotServing,
    QueryError,
    hotel_reservations,
    hotel_rooms,
    nights_param,
    room_filters,
    stay_days,
)
from streams.core.state import (
    AvailabilityState,
    CustomerState,
    ReservationState,
    RoomState,
    table_key,
)
from streams.worker.auth import Access, QueryGuard, caller_of
from streams.worker.forwarding import SERVED_BY, forward, is_local_query
from streams.worker.routing import (
    active_partitions,
    export_serving,
    is_me,
    not_serving_reason,
    owners,
    partition_of,
)
from streams.worker.tables import Table, Tables

if TYPE_CHECKING:
    from streams.worker.hub import Hub

RETRY_AFTER_S = 2


@dataclass(frozen=True)
class Entity:
    """One kind of single-entity lookup: `GET /{path}/{hotel_id}/{id}`."""

    path: str
    table: str
    model: type[BaseModel]
    noun: str


ENTITIES = (
    Entity("rooms", "rooms", RoomState, "room"),
    Entity("customers", "customers", CustomerState, "customer"),
    Entity("reservations", "stays", ReservationState, "reservation"),
)


class TableQuery(web.View):
    """A GET view of the hub's tables whose refusals (`QueryError`) become JSON bodies."""

    tables: ClassVar[Tables]

    async def get(self, request: web.Request, **params: str) -> web.Response:
        try:
            return await self.answer(request, params)
        except QueryError as exc:
            headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.retry else {}
            return self.answer_json({"error": exc.code, "detail": str(exc)}, status=exc.status,
                                    headers=headers)

    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        raise NotImplementedError

    def answer_json(self, body: Any, *, status: int = 200,
                    headers: Mapping[str, str] | None = None) -> web.Response:
        me = str(self.app.conf.canonical_url)
        return self.json(body, status=status, headers={SERVED_BY: me, **(headers or {})})

    async def elsewhere(self, request: web.Request, table: Table, hotel_id: str
                        ) -> web.Response | None:
        """None when this worker owns the hotel's partition of `table`, else the owner's answer."""
        reason = not_serving_reason(self.app)
        if reason is not None:
            raise NotServing(f"this worker is not serving yet: {reason}")
        partition = partition_of(self.app, table, hotel_id)
        if partition in active_partitions(self.app, table):
            return None
        if is_local_query(request):
            raise NotServing(f"partition {partition} of {table.name} is moving to another worker")
        owner = owners(self.app, table).get(partition)
        if owner is None or is_me(self.app, owner):
            raise NotServing(f"partition {partition} of {table.name} has no active owner yet")
        return await forward(self.app, self, request, owner)


class EntityQuery(TableQuery):
    entity: ClassVar[Entity]

    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id, entity_id = params["hotel_id"], params["entity_id"]
        table = getattr(self.tables, self.entity.table)
        forwarded = await self.elsewhere(request, table, hotel_id)
        if forwarded is not None:
            return forwarded
        state = read(table, table_key(hotel_id, entity_id).encode(), self.entity.model)
        if state is None:
            raise EntityNotFound(f"no {self.entity.noun} {entity_id} at hotel {hotel_id}")
        return self.answer_json(state.model_dump(mode="json"))


class RoomsQuery(TableQuery):
    """Rooms of a hotel, from the worker that owns the hotel."""

    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id = params["hotel_id"]
        status, room_type = room_filters(request)
        forwarded = await self.elsewhere(request, self.tables.rooms, hotel_id)
        if forwarded is not None:
            return forwarded
        rooms = hotel_rooms(states(self.tables.rooms), hotel_id, status, room_type)
        return self.answer_json({
            "hotel_id": hotel_id, "filters": {"status": status, "type": room_type},
            "count": len(rooms), "rooms": rooms,
        })


class ReservationsQuery(TableQuery):
    """Stays of a hotel arriving and/or departing on a day, from the worker that owns the
    hotel (the board's arrivals and departures)."""

    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id = params["hotel_id"]
        arriving, departing = stay_days(request)
        forwarded = await self.elsewhere(request, self.tables.stays, hotel_id)
        if forwarded is not None:
            return forwarded
        stays = hotel_reservations(states(self.tables.stays), hotel_id, arriving, departing)
        return self.answer_json({
            "hotel_id": hotel_id,
            "filters": {name: None if day is None else day.isoformat()
                        for name, day in (("arriving", arriving), ("departing", departing))},
            "count": len(stays), "reservations": stays,
        })


class AvailabilityQuery(TableQuery):
    async def answer(self, request: web.Request, params: Mapping[str, str]) -> web.Response:
        hotel_id, room_type = params["hotel_id"], params["room_type"]
        nights = nights_param(request)
        table = self.tables.availability
        forwarded = await self.elsewhere(request, table, hotel_id)
        if forwarded is not None:
            return forwarded
        found = read(table, table_key(hotel_id, room_type).encode(), AvailabilityState)
        if found is None:
            raise EntityNotFound(f"no availability for room type {room_type} at hotel {hotel_id}")
        return self.answer_json({
            "hotel_id": hotel_id, "room_type": room_type, "in_house": found.in_house,
            "from": nights[0].isoformat(), "to": nights[-1].isoformat(),
            "nights": [found.night(night) for night in nights],
        })


class HealthQuery(TableQuery):
    """200 when this worker's tables are current, 503 while they restore or move.

    Open, so a load balancer checks liveness without a secret; the rest (partitions, the
    worker's URL, why it is not serving) only for a caller with credentials.
    """

    async def get(self, request: web.Request, **params: str) -> web.Response:
        reason = not_serving_reason(self.app)
        body: dict[str, Any] = {"status": "serving" if reason is None else "recovering"}
        status = 200 if reason is None else 503
        headers = {} if reason is None else {"Retry-After": str(RETRY_AFTER_S)}
        if not caller_of(request).sees_details:
            return self.json(body, status=status, headers=headers)
        body |= {
            "app_id": self.app.conf.id, "url": str(self.app.conf.canonical_url),
            "active_partitions": {table.name: sorted(active_partitions(self.app, table))
                                  for table in self.tables.all()},
        }
        if reason is not None:
            body["detail"] = reason
        return self.answer_json(body, status=status, headers=headers)


class MetricsQuery(web.View):
    """The process's Prometheus metrics in the text format every scraper reads."""

    async def get(self, request: web.Request) -> web.Response:
        return self.bytes(generate_latest(REGISTRY),
                          headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def install_views(hub: Hub) -> QueryGuard:
    """Serve the views on the hub's web port, each reading this hub's tables, behind the guard
    (returned, so a test can look at it)."""
    guard = QueryGuard.for_settings(hub.settings)

    def bound(view: type[TableQuery], **extra: Any) -> type[web.View]:
        return type(view.__name__, (view,), {"tables": hub.tables, **extra})

    def serve(path: str, access: Access, view: type[web.View]) -> None:
        guard.allow(path, access)
        hub.app.page(path)(view)

    for entity in ENTITIES:
        serve(f"/{entity.path}/{{hotel_id}}/{{entity_id}}", Access.HOTEL,
              bound(EntityQuery, entity=entity))
    serve("/rooms/{hotel_id}", Access.HOTEL, bound(RoomsQuery))
    serve("/reservations/{hotel_id}", Access.HOTEL, bound(ReservationsQuery))
    serve("/availability/{hotel_id}/{room_type}", Access.HOTEL, bound(AvailabilityQuery))
    for path, access, view in hub.pages:
        serve(path, access, bound(view) if issubclass(view, TableQuery) else view)
    serve("/health", Access.STATUS, bound(HealthQuery))
    export_serving(hub.app)  # the same answer as /health, as a gauge
    serve("/metrics", Access.EVERY_HOTEL, MetricsQuery)
    web_app = getattr(hub.app.web, "web_app", None)
    if not isinstance(web_app, AioApplication):
        raise RuntimeError("the query API's guard needs Faust's aiohttp web driver "
                           f"(web={hub.app.conf.web!r})")
    guard.install(web_app)
    return guard
