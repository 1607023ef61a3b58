"""`/ws`: a system's live feed of the events meant for it, resumable from a cursor.

The protocol (JSON text frames):

* client, first, within 10 s: `{"type": "subscribe", "patterns": ["reservation.*"],
  "cursor": "c1...."}` (`cursor` to resume, or `since`: an ISO time, or neither for now);
* gateway: `{"control": "subscribed", "patterns": [...], "cursor": "..."}`, then every
  matching event once, as a CloudEvents JSON object whose `hubcursor` resumes after it;
* gateway, when it must stop: `{"control": "error", "code": ..., "detail": ...}` or
  `{"control": "overflow", "cursor": ...}` (the client fell `gateway_client_queue` events
  behind: it is dropped, never waited for, and resumes from that cursor), then a close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from starlette.websockets import WebSocket, WebSocketDisconnect

from streams.core.exceptions import CodecError, HubError
from streams.gateway.callers import Caller
from streams.gateway.cursor import CursorError, CursorExpired, decode_cursor
from streams.gateway.feed import Feed
from streams.gateway.messages import MessageReader, Outgoing, Routing
from streams.gateway.patterns import PatternError, Patterns
from streams.ops.metrics import (
    gateway_connections,
    gateway_deliveries_total,
    gateway_delivery_latency_seconds,
)
from streams.settings import HubSettings

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 10.0
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_CURSOR_EXPIRED = 4410
CLOSE_UNAVAILABLE = 1011


class Refusal(Exception):
    def __init__(self, code: str, detail: str, close: int = CLOSE_POLICY) -> None:
        super().__init__(detail)
        self.code, self.detail, self.close = code, detail, close


def _subscription(message: Any) -> tuple[Patterns, str | None, datetime | None]:
    if not isinstance(message, dict) or message.get("type") != "subscribe":
        raise Refusal("bad_subscribe", "the first message must be {\"type\": \"subscribe\", "
                      "\"patterns\": [...]} with an optional \"cursor\" or \"since\"")
    patterns = message.get("patterns", ["*"])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise Refusal("bad_subscribe", "patterns: a list of strings, e.g. [\"reservation.*\"]")
    try:
        checked = Patterns(patterns)
    except PatternError as exc:
        raise Refusal("bad_pattern", str(exc)) from None
    cursor, since = message.get("cursor"), message.get("since")
    if cursor is not None and since is not None:
        raise Refusal("bad_subscribe", "give a cursor or since, not both")
    if cursor is not None and not isinstance(cursor, str):
        raise Refusal("bad_cursor", "cursor: the string of a message's hubcursor")
    moment = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(str(since))
        except ValueError:
            raise Refusal("bad_since", f"since {since!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise Refusal("bad_since", f"since {since!r} has no UTC offset")
    return checked, cursor, moment


class Session:
    """One connection: a feed, a bounded queue, a sender; the first to end ends the rest."""

    def __init__(self, websocket: WebSocket, caller: Caller, settings: HubSettings,
                 reader: MessageReader) -> None:
        self.websocket, self.caller, self.settings, self.reader = (
            websocket, caller, settings, reader)
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(settings.gateway_client_queue)
        self.sent_cursor = ""

    async def run(self) -> None:
        await self.websocket.accept()
        gauge = gateway_connections.labels(system=self.caller.name)
        gauge.inc()
        feed: Feed | None = None
        try:
            try:
                patterns, cursor, since = _subscription(await asyncio.wait_for(
                    self.websocket.receive_json(), SUBSCRIBE_TIMEOUT_S))
            except TimeoutError:
                raise Refusal("no_subscribe", "no subscribe message within "
                              f"{SUBSCRIBE_TIMEOUT_S:g} s") from None
            except (json.JSONDecodeError, KeyError):
                raise Refusal("bad_subscribe", "the subscribe message is not JSON") from None
            feed = Feed(self.settings, self._topics())
            try:
                await feed.start(cursor=decode_cursor(cursor) if cursor else None, since=since)
            except CursorExpired as exc:
                raise Refusal("cursor_expired", str(exc), CLOSE_CURSOR_EXPIRED) from None
            except CursorError as exc:
                raise Refusal("bad_cursor", str(exc)) from None
            self.sent_cursor = feed.cursor()
            await self.websocket.send_text(json.dumps(
                {"control": "subscribed", "patterns": list(patterns.texts),
                 "cursor": self.sent_cursor}))
            await self._pump_and_send(feed, patterns)
        except Refusal as refusal:
            if refusal.code == "overflow":
                gateway_deliveries_total.labels(channel="websocket", system=self.caller.name,
                                                outcome="dropped").inc(self.queue.qsize())
                message = {"control": "overflow", "cursor": self.sent_cursor,
                           "detail": refusal.detail}
            else:
                message = {"control": "error", "code": refusal.code, "detail": refusal.detail}
            await self._close(message, refusal.close)
        except WebSocketDisconnect:
            pass
        except (KafkaError, HubError) as exc:  # the broker or the registry is away
            log.warning("ws: %s's feed stopped: %r", self.caller.name, exc)
            await self._close({"control": "error", "code": "unavailable",
                               "detail": "the gateway cannot read the events right now; "
                               "resume from your last cursor"}, CLOSE_UNAVAILABLE)
        finally:
            gauge.dec()
            if feed is not None:
                await feed.stop()

    def _topics(self) -> list[str]:
        names = self.reader.topics.base
        readable = self.caller.readable_topics
        return [full for full, base in names.items()
                if self.caller.sees_everything or base in readable]

    async def _pump_and_send(self, feed: Feed, patterns: Patterns) -> None:
        tasks = [asyncio.create_task(self._pump(feed, patterns), name="ws pump"),
                 asyncio.create_task(self._send(), name="ws send"),
                 asyncio.create_task(self._listen(), name="ws listen")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await task
        for task in done:
            task.result()

    async def _pump(self, feed: Feed, patterns: Patterns) -> None:
        while True:
            for record in await feed.read():
                outgoing = await self._message(record, patterns)
                feed.passed(record)
                if outgoing is None:
                    continue
                cursor = feed.cursor()
                try:
                    self.queue.put_nowait((outgoing.with_cursor(cursor), cursor))
                except asyncio.QueueFull:
                    raise Refusal("overflow", f"more than {self.queue.maxsize} events waiting "
                                  "for this client; resume from the cursor",
                                  CLOSE_TRY_AGAIN) from None
                gateway_delivery_latency_seconds.labels(channel="websocket").observe(
                    max(time.time() - record.timestamp / 1000, 0.0))

    async def _message(self, record: ConsumerRecord, patterns: Patterns) -> Outgoing | None:
        """The record as this connection's message, or None when it is not for it. Routed
        by its headers before decoding; a record without them, once decoded."""
        def wanted(routing: Routing) -> bool:
            return self.caller.admits(routing) and patterns.matches(routing.ce_type)

        routing = self.reader.routing(record.topic, record.headers)
        if record.value is None or (routing is not None and not wanted(routing)):
            return None
        try:
            outgoing = await self.reader.outgoing(record.topic, record.key, record.value,
                                                  routing)
        except CodecError as exc:
            log.warning("ws: %s[%d]@%d not decodable, skipped: %s", record.topic,
                        record.partition, record.offset, exc)
            return None
        return outgoing if routing is not None or wanted(outgoing.routing) else None

    async def _send(self) -> None:
        counter = gateway_deliveries_total.labels(
            channel="websocket", system=self.caller.name, outcome="success")
        while True:
            text, cursor = await self.queue.get()
            await self.websocket.send_text(text)
            self.sent_cursor = cursor
            counter.inc()

    async def _listen(self) -> None:
        """Reads until the client goes; clients send nothing after subscribing."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def _close(self, message: dict[str, Any], code: int) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self.websocket.send_text(json.dumps(message))
        with contextlib.suppress(Exception):
            await self.websocket.close(code)
