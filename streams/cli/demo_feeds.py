"""The demo's gateway: one in this process, a WebSocket client and a webhook receiver, so the
simulated day is seen leaving the hub the way the systems get it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
import websockets
from aiohttp import web
from rich.table import Table

from streams.core.exceptions import HubError
from streams.core.identities import basic_header
from streams.gateway.app import create_app, server_options
from streams.gateway.service import Gateway
from streams.gateway.signatures import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    secret_key,
    sign,
)
from streams.settings import HubSettings

DEMO_ENDPOINT = "hotelhub demo receiver"
WS_SYSTEM = "hotel-member"
WEBHOOK_SYSTEM = "hotel-pms"
WEBHOOK_PATTERNS = ["reservation.*", "refusal.*"]
"""Plus every CRITICAL event (check-in/out) for hotel-pms, whatever the patterns."""

log = logging.getLogger(__name__)


@dataclass
class Feeds:
    url: str
    secret: str = ""
    ws: Counter[str] = field(default_factory=Counter)
    hooks: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    ws_ids: set[str] = field(default_factory=set)
    hook_ids: set[str] = field(default_factory=set)

    async def settle(self, quiet_s: float = 1.5, timeout_s: float = 30) -> None:
        """Wait until nothing more arrives for `quiet_s` (the day has been handed out)."""
        deadline = time.monotonic() + timeout_s
        seen = -1
        while time.monotonic() < deadline:
            total = len(self.ws_ids) + len(self.hook_ids)
            if total == seen:
                return
            seen = total
            await asyncio.sleep(quiet_s)

    def table(self) -> Table:
        table = Table(title=f"Handed out by the gateway ({self.url}): WebSocket to {WS_SYSTEM} "
                      f"(*), webhook to {WEBHOOK_SYSTEM} ({', '.join(WEBHOOK_PATTERNS)} and "
                      "CRITICAL), signatures checked")
        table.add_column("event type")
        table.add_column("WebSocket", justify="right")
        table.add_column("webhook", justify="right")
        for kind in sorted(set(self.ws) | set(self.hooks)):
            table.add_row(kind, str(self.ws.get(kind, 0)), str(self.hooks.get(kind, 0)))
        table.add_row("[b]events[/b]", str(len(self.ws_ids)), str(len(self.hook_ids)))
        if self.bad_signatures:
            table.add_row("[red]bad signatures[/red]", "", str(self.bad_signatures))
        return table


def _port(wanted: int) -> int:
    """`wanted`, or a free port when something (a running `hotelhub gateway`) holds it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _basic(settings: HubSettings, identity: str) -> tuple[str, str]:
    return settings.as_identity(identity).credentials() or (identity, "")


@asynccontextmanager
async def demo_feeds(settings: HubSettings) -> AsyncIterator[Feeds]:
    gateway = Gateway(settings.acting_as("hotel-hub"))
    port = _port(settings.gateway_port)
    server = uvicorn.Server(uvicorn.Config(create_app(gateway),
                                           **server_options("127.0.0.1", port)))
    serving = asyncio.create_task(server.serve())
    feeds = Feeds(f"http://127.0.0.1:{port}")
    tasks: list[asyncio.Task[None]] = []
    runner: web.AppRunner | None = None
    try:
        async with asyncio.timeout(60):
            while not (server.started and gateway.ready):
                if serving.done():
                    raise HubError("the demo's gateway did not start (see the log above)")
                await asyncio.sleep(0.05)
        runner, hook_url = await _receiver(feeds)
        async with httpx.AsyncClient(base_url=feeds.url,
                                     auth=_basic(settings, WEBHOOK_SYSTEM)) as client:
            for old in (await client.get("/webhooks")).json():
                if old["description"] == DEMO_ENDPOINT:  # left by an earlier demo
                    await client.delete(f"/webhooks/{old['id']}")
            created = (await client.post("/webhooks", json={
                "url": hook_url, "patterns": WEBHOOK_PATTERNS,
                "description": DEMO_ENDPOINT})).json()
            feeds.secret = created["secret"]
            connection = await websockets.connect(
                feeds.url.replace("http", "ws") + "/ws", max_size=None,
                additional_headers={"Authorization": basic_header(*_basic(settings, WS_SYSTEM))})
            await connection.send(json.dumps({"type": "subscribe", "patterns": ["*"]}))
            await connection.recv()  # subscribed
            tasks.append(asyncio.create_task(_listen(connection, feeds)))
            try:
                yield feeds
            finally:
                await connection.close()
                await client.delete(f"/webhooks/{created['id']}")
    finally:
        for task in tasks:
            task.cancel()
        if runner is not None:
            await runner.cleanup()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 30)


async def _listen(connection: Any, feeds: Feeds) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for text in connection:
            message = json.loads(text)
            if "control" not in message:
                feeds.ws[message["type"]] += 1
                feeds.ws_ids.add(message["id"])


async def _receiver(feeds: Feeds) -> tuple[web.AppRunner, str]:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        expected = sign(secret_key(feeds.secret), headers[ID_HEADER],
                        int(headers[TIMESTAMP_HEADER]), body)
        if expected not in headers[SIGNATURE_HEADER].split():
            feeds.bad_signatures += 1
            return web.Response(status=400)
        message = json.loads(body)
        feeds.hooks[message["type"]] += 1
        feeds.hook_ids.add(message["id"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _port(0)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hook"
