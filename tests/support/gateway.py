"""The gateway for tests and benchmarks: in process (uvicorn on a free port) or as real
`hotelhub gateway` processes, a webhook receiver that verifies signatures with the reference
`standardwebhooks` package, and clients that authenticate as an identity."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from streams.core.identities import basic_header
from streams.core.kinds import EventKind, System
from streams.core.models import RoomEvent
from streams.gateway.app import create_app, server_options
from streams.gateway.service import Gateway
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.collector import eventually
from tests.support.events import sample

REPO = Path(__file__).resolve().parents[2]


GATEWAY_COMMAND = ("import sys\nfrom streams.cli import app\n"
                   "app(['gateway', '--port', sys.argv[1]])")
"""What `hotelhub gateway --port N` runs, without depending on the venv's script."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_settings(settings: HubSettings, **changes: Any) -> HubSettings:
    """`settings` (an `isolated` test's) as the gateway runs them: the hub's identity and
    app id, and a retry schedule of seconds instead of a day."""
    base = {"app_id": f"{settings.topic_prefix}hotelhub", "webhook_retry_schedule_s": [0.2, 0.5, 1],
            "webhook_retry_jitter": 0.1}
    return settings.as_identity("hotel-hub").model_copy(update={**base, **changes})


def credentials(settings: HubSettings, identity: str) -> tuple[str, str]:
    """(username, secret) of `identity` from the session's secret files (security none: any)."""
    found = settings.as_identity(identity).credentials()
    return found if found is not None else (identity, "")


def basic(settings: HubSettings, identity: str) -> str:
    return basic_header(*credentials(settings, identity))


@dataclass
class RunningGateway:
    gateway: Gateway | None
    url: str
    settings: HubSettings

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def client(self, identity: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, auth=credentials(self.settings, identity),
                                 timeout=30)

    @asynccontextmanager
    async def subscribe(self, identity: str, patterns: list[str] | None = None, *,
                        cursor: str | None = None, since: str | None = None
                        ) -> AsyncIterator[Subscription]:
        socket_ = await websockets.connect(
            self.ws_url, additional_headers={"Authorization": basic(self.settings, identity)},
            max_size=None)
        try:
            request: dict[str, Any] = {"type": "subscribe", "patterns": patterns or ["*"]}
            if cursor is not None:
                request["cursor"] = cursor
            if since is not None:
                request["since"] = since
            await socket_.send(json.dumps(request))
            first = json.loads(await asyncio.wait_for(socket_.recv(), 30))
            yield Subscription(socket_, first)
        finally:
            await socket_.close()


@dataclass
class Subscription:
    socket: Any
    first: dict[str, Any]
    """`subscribed` (with the starting cursor), or the error that ended it."""
    events: list[dict[str, Any]] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)

    async def receive(self, count: int, *, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Read until `count` events more have come (controls are kept apart)."""
        want = len(self.events) + count
        async with asyncio.timeout(timeout_s):
            while len(self.events) < want:
                message = json.loads(await self.socket.recv())
                (self.controls if "control" in message else self.events).append(message)
        return self.events

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Whatever else arrives within `seconds` (to show nothing more does)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    message = json.loads(await self.socket.recv())
                    (self.controls if "control" in message else self.events).append(message)
        return self.events


@asynccontextmanager
async def running_gateway(settings: HubSettings) -> AsyncIterator[RunningGateway]:
    """A gateway in this event loop, serving HTTP on a free loopback port."""
    gateway = Gateway(settings)
    port = free_port()
    config = uvicorn.Config(create_app(gateway), **server_options("127.0.0.1", port))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not (server.started and gateway.ready):
                if task.done():
                    task.result()
                    raise RuntimeError("the gateway stopped while starting")
                await asyncio.sleep(0.05)
        yield RunningGateway(gateway, f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


@dataclass
class GatewayProcess:
    """A real `hotelhub gateway` process (for SIGKILL and two-process tests)."""

    settings: HubSettings
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> RunningGateway:
        return RunningGateway(None, self.url, self.settings)

    def start(self, *, timeout_s: float = 60) -> None:
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("HOTELHUB_")} | child_environment(self.settings)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", GATEWAY_COMMAND, str(self.port)], cwd=REPO, env=env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited {self.process.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"gateway not ready in {timeout_s} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def child_environment(settings: HubSettings) -> dict[str, str]:
    """The settings a child process (a gateway, a client) needs to act in this deployment."""
    env = {
        "HOTELHUB_TOPIC_PREFIX": settings.topic_prefix,
        "HOTELHUB_APP_ID": settings.app_id,
        "HOTELHUB_IDENTITY": settings.identity,
        "HOTELHUB_SECURITY": settings.security,
        "HOTELHUB_HOME": str(settings.home),
        "HOTELHUB_SECURITY_DIR": str(settings.security_home),
        "HOTELHUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "HOTELHUB_WEBHOOK_LANES": str(settings.webhook_lanes),
        "PYTHONUNBUFFERED": "1",
        "HOTELHUB_WEBHOOK_RETRY_SCHEDULE_S": json.dumps(settings.webhook_retry_schedule_s),
        "HOTELHUB_WEBHOOK_RETRY_JITTER": str(settings.webhook_retry_jitter),
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.registry_url,
    }
    return env


@contextmanager
def gateway_processes(settings: HubSettings, count: int, log_dir: Path
                      ) -> Iterator[list[GatewayProcess]]:
    processes = [GatewayProcess(settings, free_port(), log_dir / f"gateway-{n}.log")
                 for n in range(count)]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    at: float


Answer = Callable[[web.Request], Awaitable[web.StreamResponse] | web.StreamResponse]


class Receiver:
    """A webhook receiver on a free port; verifies every request with `standardwebhooks`.

    `answer` decides the response (default 204); a request whose signature does not verify
    is recorded in `bad` and answered 400, never as received.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.secret: str | None = None
        self.received: list[Received] = []
        self.bad: list[str] = []
        self.answer: Answer | None = None
        self.calls = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        body = await request.read()
        if self.answer is not None:
            answered = self.answer(request)
            response = await answered if asyncio.iscoroutine(answered) else answered
            assert isinstance(response, web.StreamResponse)
            if not 200 <= response.status < 300:
                return response
        try:
            assert self.secret is not None, "the test did not give the receiver its secret"
            Webhook(self.secret).verify(body, dict(request.headers))
        except Exception as exc:
            self.bad.append(f"{request.headers.get('webhook-id')}: {exc!r}")
            return web.Response(status=400)
        self.received.append(Received(request.headers["webhook-id"], json.loads(body),
                                      time.time()))
        return web.Response(status=204)

    def ids(self) -> list[str]:
        return [item.webhook_id for item in self.received]

    async def wait_for(self, count: int, *, timeout_s: float = 60) -> list[Received]:
        await eventually(lambda: len(set(self.ids())) >= count, timeout_s=timeout_s,
                         interval_s=0.05)
        return self.received


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    try:
        yield found
    finally:
        await found.stop()


async def publish_rooms(settings: HubSettings, rooms: int, versions: int,
                        run: str | None = None) -> dict[str, list[str]]:
    """`versions` room events for each of `rooms` rooms, interleaved, published by hotel-pms
    straight to Kafka; the event ids per room id, in publish order."""
    order: dict[str, list[str]] = defaultdict(list)
    run = run or uuid.uuid4().hex[:6]
    documents = [sample(EventKind.ROOM, f"R{run}-{room}", version=version)[1]
                 for version in range(1, versions + 1) for room in range(rooms)]
    async with SchemaRegistryClient.from_settings(settings) as registry, HotelEventPublisher(
            system=System.HOTEL_PMS, registry=registry, settings=settings) as publisher:
        for outcome in await publisher.publish_many(documents):
            assert outcome.ok and isinstance(outcome.event, RoomEvent), outcome.problem
            order[outcome.event.data.room_id].append(str(outcome.event.event_id))
    return order


def per_room(messages: Iterable[dict[str, Any]], *, first_seen: bool = False
             ) -> dict[str, list[str]]:
    """CloudEvents ids per room in the order they came (`first_seen`: a redelivery dropped)."""
    found: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        room = found[message["data"]["data"]["room_id"]]
        if not (first_seen and message["id"] in room):
            room.append(message["id"])
    return found
