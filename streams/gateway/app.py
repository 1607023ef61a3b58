"""The gateway's HTTP and WebSocket API (FastAPI: the OpenAPI document comes from the code).

Every route but `/healthz`, `/readyz` and `/openapi.json` asks for an identity's credentials
(HTTP Basic). Errors are `{"error": code, "detail": why, "fields": {path: why}}`, the
fields named as the event document names them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Header, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from streams.core.exceptions import (
    EventValidationError,
    HubError,
    PublishError,
    PublishForbidden,
)
from streams.core.identities import CredentialsRefused
from streams.gateway.board import BoardRoutes
from streams.gateway.callers import Caller
from streams.gateway.deadletters import read_dead_letters
from streams.gateway.endpoints import Endpoint, EndpointStatus, UrlRefused
from streams.gateway.errors import REALM, ApiError, ErrorOut
from streams.gateway.history import StoredHistory, history_router
from streams.gateway.patterns import PatternError
from streams.gateway.publishing import KeyReused
from streams.gateway.service import Gateway
from streams.gateway.websocket import Session


class AcceptedOut(BaseModel):
    event_id: str
    topic: str
    partition: int
    offset: int
    replayed: bool = Field(description="True when this request repeats one already published "
                           "(same Idempotency-Key or event_id): nothing was published again.")


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048, pattern=r"^https?://", examples=[
        "https://pms.example/hotelhub/events"],
        description="http(s) URL the gateway POSTs events to.")
    patterns: list[str] = Field(default=["*"], min_length=1, max_length=64,
                                description="Event types wanted, e.g. 'reservation.*'. CRITICAL "
                                "events (check-in/out) are sent whatever the patterns.")
    description: str = Field(default="", max_length=500)
    system: str | None = Field(default=None, description="The system the endpoint is for; "
                               "only the operator or the hub names one, a system registers "
                               "its own.")


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    patterns: list[str] | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=500)
    status: Literal["active", "paused"] | None = Field(
        default=None, description="'paused' keeps the endpoint without calling it (its events "
        "go to dead letters, to replay); 'active' resumes it, also after a 410 disabled it.")


class EndpointOut(BaseModel):
    id: str
    system: str
    url: str
    patterns: list[str]
    status: EndpointStatus
    status_reason: str | None
    description: str
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="whsec_ secret the receiver verifies signatures with.")


class SecretOut(BaseModel):
    secret: str


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dead_letters: bool = Field(default=False, description="Replay the endpoint's dead letters "
                               "(those that died since `since`, if given).")
    since: AwareDatetime | None = Field(default=None, description="Without dead_letters: "
                                        "replay every event the endpoint wants published "
                                        "since this time.")


class ReplayOut(BaseModel):
    replayed: int


class DeadLetterOut(BaseModel):
    endpoint_id: str
    system: str
    url: str
    reason: str
    dead_at: str
    event: dict[str, Any]
    attempts: list[dict[str, Any]]


ENDPOINT_LINKS = {
    operation: {"operationId": operation,
                "parameters": {"endpoint_id": "$response.body#/id"}}
    for operation in ("getEndpoint", "getEndpointSecret", "updateEndpoint", "pauseEndpoint",
                      "resumeEndpoint", "replayEndpoint", "listDeadLetters", "deleteEndpoint")
}
"""OpenAPI links: a created endpoint's id is what the other operations take."""

EVENT_EXAMPLE = {
    "type": "room", "action": "status_changed", "hotel_id": "HTL-TYO-01",
    "data": {"room_id": "RM-305", "room_number": "305", "room_type": "TWN",
             "status": "vacant_clean", "availability_date": "2026-11-24", "version": 1},
}

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 422, 503)}


_basic = HTTPBasic(auto_error=False, realm=REALM)


def _caller(request: Request,
            _: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> Caller:
    """The authenticated caller (the scheme above puts HTTP Basic in the OpenAPI document)."""
    gateway: Gateway = request.app.state.gateway
    try:
        return gateway.callers.authenticate(request.headers.get("authorization"))
    except CredentialsRefused as refused:
        raise ApiError(refused.status, refused.code, refused.detail) from None


Authenticated = Annotated[Caller, Depends(_caller)]


def create_app(gateway: Gateway, *, manage: bool = True) -> FastAPI:
    """The API of `gateway`; with `manage` the app starts and stops it (its lifespan)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage:
            await gateway.start()
        try:
            yield
        finally:
            await history.close()
            if manage:
                await gateway.stop()

    app = FastAPI(title="hotelhub gateway", version="1",
                  description="REST publishing, webhook endpoints and the WebSocket feed "
                  "(`/ws`, described in streams/gateway/websocket.py) of the hotel event hub.",
                  lifespan=lifespan, responses=ERRORS)
    app.state.gateway = gateway
    board = BoardRoutes(gateway)
    app.include_router(board.router)
    history = StoredHistory(gateway.settings)
    app.include_router(history_router(history, Authenticated))

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = {".".join(str(p) for p in error["loc"] if p != "body") or "(body)":
                  error["msg"] for error in exc.errors()}
        return ApiError(422, "invalid_request", "the request is not valid: "
                        + "; ".join(f"{k}: {v}" for k, v in fields.items()), fields).response()

    def owned(endpoint_id: str, who: Caller) -> Endpoint:
        endpoint = gateway.book.get(endpoint_id)
        if endpoint is None or not (who.sees_everything or endpoint.system == who.name):
            raise ApiError(404, "not_found", f"no webhook endpoint {endpoint_id} of {who.name}")
        return endpoint

    @app.get("/healthz", responses={200: {"description": "The process is alive."}})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorOut}})
    async def readyz() -> Any:
        problem = gateway.problem()
        if problem is not None:
            return ApiError(503, "not_ready", problem).response()
        return {"status": "ready"}

    @app.get("/metrics", response_class=Response)
    async def metrics(who: Authenticated) -> Response:
        if not (who.sees_everything or "*" in who.identity.hotels):
            raise ApiError(403, "forbidden", f"identity {who.name} does not see every hotel, "
                           "and the metrics cover them all")
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/events", status_code=202, response_model=AcceptedOut, operation_id="publishEvent")
    async def post_event(
        who: Authenticated,
        document: Annotated[dict[str, Any], Body(
            description="The design's event: type, action, data, and optionally hotel_id, "
            "event_id, occurred_at, correlation_id, causation_id.",
            examples=[EVENT_EXAMPLE])],
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    ) -> AcceptedOut:
        try:
            accepted = await gateway.publishing.publish(who, document, idempotency_key)
        except EventValidationError as exc:
            raise ApiError(422, "invalid_event", str(exc), exc.errors) from None
        except KeyReused as exc:
            raise ApiError(422, "idempotency_key_reused", str(exc),
                           {"Idempotency-Key": str(exc)}) from None
        except PublishForbidden as exc:
            raise ApiError(403, "forbidden", str(exc)) from None
        except (PublishError, HubError) as exc:  # the broker or the registry did not answer
            raise ApiError(503, "not_published", str(exc)) from None
        return AcceptedOut(**accepted.__dict__)

    @app.post("/webhooks", status_code=201, response_model=EndpointCreated,
              operation_id="createEndpoint", responses={201: {"links": ENDPOINT_LINKS}})
    async def create_endpoint(who: Authenticated, spec: EndpointIn) -> EndpointCreated:
        system = who.name
        if spec.system is not None and spec.system != who.name:
            if not who.sees_everything:
                raise ApiError(403, "forbidden", f"{who.name} registers endpoints for itself "
                               "only")
            system = spec.system
        if gateway.callers.identity(system) is None:
            raise ApiError(422, "invalid_request", f"no identity {system}",
                           {"system": f"no identity {system}"})
        try:
            endpoint = await gateway.book.create(system, spec.url, spec.patterns,
                                                 spec.description)
        except (PatternError, UrlRefused) as exc:
            raise _field_error(exc) from None
        return EndpointCreated(**endpoint.model_dump())

    @app.get("/webhooks", response_model=list[EndpointOut], operation_id="listEndpoints")
    async def list_endpoints(who: Authenticated,
                             system: Annotated[str | None, Query(max_length=64)] = None
                             ) -> list[EndpointOut]:
        found = gateway.book.all() if who.sees_everything else gateway.book.of_system(who.name)
        return [EndpointOut(**e.public()) for e in found if system in (None, e.system)]

    @app.get("/webhooks/{endpoint_id}", response_model=EndpointOut, operation_id="getEndpoint")
    async def get_endpoint(who: Authenticated, endpoint_id: str) -> EndpointOut:
        return EndpointOut(**owned(endpoint_id, who).public())

    @app.get("/webhooks/{endpoint_id}/secret", response_model=SecretOut,
              operation_id="getEndpointSecret")
    async def get_secret(who: Authenticated, endpoint_id: str) -> SecretOut:
        return SecretOut(secret=owned(endpoint_id, who).secret)

    @app.patch("/webhooks/{endpoint_id}", response_model=EndpointOut, operation_id="updateEndpoint")
    async def update_endpoint(who: Authenticated, endpoint_id: str, patch: EndpointPatch
                              ) -> EndpointOut:
        endpoint = owned(endpoint_id, who)
        changes = patch.model_dump(exclude_none=True)
        if "status" in changes:
            changes["status"] = EndpointStatus(changes["status"])
        try:
            updated = await gateway.book.update(endpoint, **changes)
        except (PatternError, UrlRefused) as exc:
            raise _field_error(exc) from None
        return EndpointOut(**updated.public())

    @app.post("/webhooks/{endpoint_id}/pause", response_model=EndpointOut,
              operation_id="pauseEndpoint")
    async def pause_endpoint(who: Authenticated, endpoint_id: str) -> EndpointOut:
        endpoint = await gateway.book.update(owned(endpoint_id, who),
                                             status=EndpointStatus.PAUSED,
                                             status_reason=f"paused by {who.name}")
        return EndpointOut(**endpoint.public())

    @app.post("/webhooks/{endpoint_id}/resume", response_model=EndpointOut,
              operation_id="resumeEndpoint")
    async def resume_endpoint(who: Authenticated, endpoint_id: str) -> EndpointOut:
        endpoint = await gateway.book.update(owned(endpoint_id, who),
                                             status=EndpointStatus.ACTIVE)
        return EndpointOut(**endpoint.public())

    @app.delete("/webhooks/{endpoint_id}", status_code=204, response_class=Response,
              operation_id="deleteEndpoint")
    async def delete_endpoint(who: Authenticated, endpoint_id: str) -> Response:
        await gateway.book.delete(owned(endpoint_id, who).id)
        return Response(status_code=204)

    @app.post("/webhooks/{endpoint_id}/replay", status_code=202, response_model=ReplayOut,
              operation_id="replayEndpoint")
    async def replay(who: Authenticated, endpoint_id: str, spec: ReplayIn) -> ReplayOut:
        endpoint = owned(endpoint_id, who)
        if spec.dead_letters:
            count = await gateway.webhooks.replay_dead_letters(endpoint, spec.since)
        elif spec.since is not None:
            count = await gateway.webhooks.replay_since(endpoint, spec.since)
        else:
            raise ApiError(422, "invalid_request", "say what to replay: dead_letters, or "
                           "since (a time)", {"since": "required without dead_letters"})
        return ReplayOut(replayed=count)

    @app.get("/webhooks/{endpoint_id}/dead-letters", response_model=list[DeadLetterOut],
              operation_id="listDeadLetters")
    async def dead_letters(who: Authenticated, endpoint_id: str,
                           limit: Annotated[int, Query(ge=1, le=10_000)] = 100
                           ) -> list[DeadLetterOut]:
        letters = await read_dead_letters(gateway.settings, owned(endpoint_id, who).id,
                                          limit=limit)
        return [DeadLetterOut(**asdict(letter)) for letter in letters]

    @app.websocket("/ws")
    async def websocket(socket: WebSocket) -> None:
        try:
            who = board.socket_caller(socket)  # HTTP Basic, or the live board's token
        except CredentialsRefused as refused:
            # Refused at the handshake, as HTTP: a client sees 401/403 and why.
            await socket.send_denial_response(
                ApiError(refused.status, refused.code, refused.detail).response())
            return
        await Session(socket, who, gateway.settings, gateway.reader).run()

    return app


def _field_error(exc: Exception) -> ApiError:
    field = "url" if isinstance(exc, UrlRefused) else "patterns"
    return ApiError(422, "invalid_request", str(exc), {field: str(exc)})


def server_options(host: str, port: int) -> dict[str, Any]:
    """uvicorn's settings for the gateway. Frames go uncompressed: events are small JSON, and
    permessage-deflate cost CPU on every frame in the benchmark for little saved."""
    return {"host": host, "port": port, "log_level": "warning", "lifespan": "on",
            "ws_ping_interval": 20, "ws_ping_timeout": 20, "ws_per_message_deflate": False}


async def serve(gateway: Gateway, *, host: str, port: int) -> None:
    """Run the gateway's API until the process is told to stop (SIGINT/SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(create_app(gateway), **server_options(host, port))
    await uvicorn.Server(config).serve()


