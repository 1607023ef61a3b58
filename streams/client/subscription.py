"""The client's feed from the gateway's `/ws`: handlers by pattern, the cache kept current,
and the cursor saved after each event so a reconnect resumes exactly where it stopped.

Delivery to handlers is at least once: the cursor is saved after the handlers ran, so an
event being handled when the process dies is handled again on restart (handlers should be
idempotent by event_id, as the cache is).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from streams.client.cache import LocalCache
from streams.core.identities import basic_header
from streams.gateway.patterns import REFUSAL, Patterns, short_type
from streams.settings import HubSettings

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
"""Called with the event as the design defines it (the CloudEvent's `data`): envelope and
`data`, money as decimal strings; for `refusal.*`, the refusal."""

CACHED_KINDS = frozenset({"reservation", "customer", "room", "checkin_checkout"})
CACHE_PATTERNS = ("reservation.*", "customer.*", "room.*", "checkin_checkout.*", "refusal.*")
"""What the cache follows whatever the handlers ask for."""

HANDLER_ATTEMPTS = 3


@dataclass(frozen=True)
class Subscribed:
    pattern: Patterns
    handler: Handler


class Subscription:
    def __init__(self, settings: HubSettings, cache: LocalCache, *, url: str) -> None:
        self.settings, self.cache = settings, cache
        self.url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
        self.handlers: list[Subscribed] = []
        self.connected = asyncio.Event()
        self.handler_failures = 0
        self.received = 0

    def on(self, pattern: str, handler: Handler) -> None:
        self.handlers.append(Subscribed(Patterns([pattern]), handler))

    def patterns(self) -> list[str]:
        return list(dict.fromkeys([*CACHE_PATTERNS,
                                   *(text for s in self.handlers for text in s.pattern.texts)]))

    async def run(self) -> None:
        """Follow the feed until cancelled; reconnect with backoff, resume from the cursor."""
        delay = self.settings.client_retry_min_s
        while True:
            try:
                async with connect(self.url, additional_headers=self._auth(),
                                   open_timeout=self.settings.connect_timeout_s,
                                   max_size=None) as socket:
                    await self._subscribe(socket)
                    delay = self.settings.client_retry_min_s
                    await self._follow(socket)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                log.info("feed from %s lost (%r); again in %.2f s", self.url, exc, delay)
            finally:
                self.connected.clear()
            await asyncio.sleep(delay * random.uniform(0.8, 1.0))
            delay = min(delay * 2, self.settings.client_retry_max_s)

    def _auth(self) -> dict[str, str]:
        """Its credential as HTTP Basic; with security off the username alone names it."""
        username, secret = self.settings.credentials() or (self.settings.identity, "")
        return {"Authorization": basic_header(username, secret)}

    async def _subscribe(self, socket: ClientConnection) -> None:
        request: dict[str, Any] = {"type": "subscribe", "patterns": self.patterns()}
        cursor = self.cache.cursor()
        if cursor:
            request["cursor"] = cursor
        await socket.send(json.dumps(request))

    async def _follow(self, socket: ClientConnection) -> None:
        async for raw in socket:
            message = json.loads(raw)
            control = message.get("control")
            if control == "subscribed":
                self.connected.set()
                if not self.cache.cursor():
                    self.cache.save_cursor(message["cursor"])
            elif control == "overflow":
                log.warning("feed overflowed at the gateway; resuming from the cursor")
                return
            elif control == "error":
                if message.get("code") == "cursor_expired":
                    log.error("the cursor is older than the hub keeps (%s); following from "
                              "now on: the cache may miss changes made in between",
                              message.get("detail"))
                    self.cache.save_cursor("")
                else:
                    log.warning("feed error %s: %s", message.get("code"), message.get("detail"))
                return
            elif control is None:
                await self._deliver(message)

    async def _deliver(self, message: dict[str, Any]) -> None:
        kind_action = short_type(str(message.get("type", "")))
        data = message.get("data") or {}
        kind = kind_action.partition(".")[0]
        if kind == REFUSAL:
            self.cache.record_refusal(data)
        elif kind in CACHED_KINDS:
            self.cache.apply(data)
            self.cache.confirm(str(data.get("event_id")))
        for subscribed in self.handlers:
            if subscribed.pattern.matches(kind_action):
                await self._call(subscribed.handler, data, kind_action)
        self.received += 1
        self.cache.save_cursor(str(message.get("hubcursor", "")))

    async def _call(self, handler: Handler, data: dict[str, Any], kind_action: str) -> None:
        for attempt in range(1, HANDLER_ATTEMPTS + 1):
            try:
                outcome = handler(data)
                if inspect.isawaitable(outcome):
                    await outcome
                return
            except Exception:
                if attempt == HANDLER_ATTEMPTS:
                    self.handler_failures += 1
                    log.exception("handler %s failed %d times on %s %s; going on",
                                  getattr(handler, "__name__", handler), attempt, kind_action,
                                  data.get("event_id") or data.get("refusal_id"))
                    return
                await asyncio.sleep(0.1 * attempt)

