"""`HubClient`: what a system embeds to talk to the hub, and to keep working without it.

    async with HubClient("hotel-pms") as client:
        client.on("reservation.created", on_booking)
        client.publish("room", "status_changed", {...})   # committed locally, then sent
        client.cache.rooms("H1", status="vacant_clean")     # readable with the hub down

A publish is validated, committed to the outbox (SQLite, synchronous) and applied to the
local cache before `publish` returns; a background task sends the outbox oldest first. When
the hub cannot be reached the client says so (`status().online`), keeps accepting, flags
what it accepts `created_offline`, retries with backoff, and syncs the difference as soon
as the hub answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from streams.client.cache import Conflict, LocalCache
from streams.client.ids import new_id
from streams.client.outbox import Entry, Outbox
from streams.client.subscription import Handler, Subscription
from streams.client.transports import HubUnreachable, Transport, transport_for
from streams.core.documents import build_event
from streams.core.kinds import EventKind, System
from streams.core.models import HotelEvent, record_key
from streams.settings import HubSettings, get_settings

log = logging.getLogger(__name__)

IDLE_CHECK_S = 1.0
"""How often a quiet, online client asks the broker (or gateway) whether it is still there;
a publish that fails notices sooner."""
SENT_KEPT = timedelta(days=7)
"""How long sent entries stay in the outbox (for support), like the hub's own retention."""


@dataclass(frozen=True)
class ClientStatus:
    online: bool
    pending: int
    rejected: int
    oldest_pending_at: datetime | None
    last_error: str | None
    """Why the hub was last unreachable."""
    last_sync_s: float | None
    """How long the last sync after a recovery took, from reconnect to empty outbox."""


class HubClient:
    def __init__(
        self,
        system: System | str,
        *,
        settings: HubSettings | None = None,
        directory: Path | None = None,
        client_id: str | None = None,
        transport: Transport | None = None,
        subscribe: bool | None = None,
    ) -> None:
        """`subscribe`: follow the gateway's feed (handlers and the cache); default: when
        a gateway is configured (`gateway_url`) or the client publishes through it."""
        base = settings or get_settings()
        self.system = System(system)
        self.settings = (base if base.identity == self.system.value
                         else base.as_identity(self.system.value))
        self.client_id = client_id or base.client_id or _host_id()
        self.directory = directory or base.client_dir or (
            base.home / "client" / f"{self.system.value}-{self.client_id}")
        self.outbox = Outbox(self.directory / "outbox.sqlite3")
        self.cache = LocalCache(self.directory / "cache.sqlite3")
        self.transport = transport or transport_for(self.settings, self.system, self.client_id)
        follow = subscribe if subscribe is not None else (
            base.gateway_url is not None or base.client_transport == "gateway")
        url = base.gateway_url or f"http://127.0.0.1:{base.gateway_port}"
        self.subscription = Subscription(self.settings, self.cache, url=url) if follow else None
        self._limits = self.settings.limits()
        self.online = False
        self.last_error: str | None = None
        self.last_sync_s: float | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Try the hub once (so what is published next is flagged correctly), then keep
        syncing in the background whatever the answer."""
        await self._connect()
        self._tasks.append(asyncio.create_task(self._sync(), name="hub client sync"))
        if self.subscription is not None:
            self._tasks.append(asyncio.create_task(self.subscription.run(),
                                                   name="hub client feed"))

    async def stop(self) -> None:
        """Stop sending; what is not sent stays in the outbox for the next start."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.transport.close()
        self.outbox.close()
        self.cache.close()

    async def __aenter__(self) -> HubClient:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # -- publishing -------------------------------------------------------------------

    def publish(self, kind: EventKind | str, action: str,
                data: Mapping[str, Any] | BaseModel, **envelope: Any) -> Entry:
        """Accept one event: validated (EventValidationError names each bad field, and
        nothing is stored), committed to the outbox, applied to the cache as pending.

        Returns once the outbox holds it, online or not; the event is sent in the
        background, oldest first. `envelope` may carry hotel_id, event_id (default: a
        UUIDv7 made here), occurred_at, correlation_id and causation_id.
        """
        payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else dict(data)
        offline = not self.online
        document: dict[str, Any] = {**envelope, "type": str(kind), "action": action,
                                    "data": payload, "created_offline": offline}
        document.setdefault("event_id", new_id())
        document.setdefault("occurred_at", datetime.now(UTC).isoformat())
        event = self._build(document)
        # The whole built event is kept: the policy, limits and enrichment are decided once,
        # here; the sync only checks it against the contract and stamps `synced_at`.
        entry = self.outbox.accept(event.model_dump(mode="json"), event_id=str(event.event_id),
                                   entity=record_key(event).decode(), kind=str(event.type),
                                   created_offline=offline)
        self.cache.apply(event.model_dump(mode="json"), pending=True)
        self._wake.set()
        return entry

    def _build(self, document: Mapping[str, Any]) -> HotelEvent:
        return build_event(document, publisher=self.system,
                           default_hotel_id=self.settings.default_hotel_id, limits=self._limits)

    async def flush(self, timeout_s: float) -> None:
        """Wait until the outbox has nothing pending; TimeoutError saying how much is left."""
        deadline = time.monotonic() + timeout_s
        while (left := self.outbox.counts().pending) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{left} event(s) still in the outbox after {timeout_s:g} s "
                                   f"(online: {self.online}; {self.last_error or 'no error'})")
            self._wake.set()
            await asyncio.sleep(0.02)

    # -- reading ----------------------------------------------------------------------

    def on(self, pattern: str, handler: Handler) -> None:
        """Call `handler` with every event matching `pattern` (`reservation.created`,
        `reservation.*`, `refusal.*`, `*`); call before `start`."""
        if self.subscription is None:
            raise RuntimeError("this client does not follow the gateway's feed: give it "
                               "gateway_url (HOTELHUB_GATEWAY_URL) or subscribe=True")
        self.subscription.on(pattern, handler)

    def conflicts(self) -> list[Conflict]:
        """Changes the hub refused, the offline ones among them conflicts; for the desk."""
        return self.cache.conflicts()

    def resolve(self, refusal_id: str, resolution: str) -> None:
        """Record what the desk decided about a conflict (it leaves `conflicts()`)."""
        self.cache.resolve(refusal_id, resolution)

    def status(self) -> ClientStatus:
        counts = self.outbox.counts()
        return ClientStatus(self.online, counts.pending, counts.rejected,
                            counts.oldest_pending_at, self.last_error, self.last_sync_s)

    # -- the sync loop ----------------------------------------------------------------

    async def _connect(self) -> bool:
        began = time.monotonic()
        try:
            await self.transport.connect()
            connected = time.monotonic()
            found = await self.transport.reconcile(self.outbox)
        except HubUnreachable as exc:
            self._lost(str(exc))
            return False
        if found:
            log.info("%d outbox event(s) were already in Kafka (sent before a crash)", found)
        self.outbox.prune(datetime.now(UTC) - SENT_KEPT)
        if not self.online:
            log.info("hub reachable (%s: connected in %.2f s, checkpoint read in %.2f s); "
                     "%d event(s) to sync", self.transport.name, connected - began,
                     time.monotonic() - connected, self.outbox.counts().pending)
        self.online, self.last_error = True, None
        return True

    def _lost(self, why: str) -> None:
        if self.online or self.last_error is None:
            log.warning("hub unreachable, working offline: %s", why)
        self.online, self.last_error = False, why

    async def _sync(self) -> None:
        delay = self.settings.client_retry_min_s
        recovering: float | None = None
        listening = False
        while True:
            if not self.online:
                reachable = await self.transport.reachable()
                if reachable and not listening:
                    delay = self.settings.client_retry_min_s  # just came back: try soon
                listening = reachable
                if not reachable or not await self._connect():
                    await asyncio.sleep(delay * random.uniform(0.8, 1.0))
                    delay = min(delay * 2, self.settings.client_retry_max_s)
                    continue
                delay, recovering = self.settings.client_retry_min_s, time.monotonic()
            self._wake.clear()
            entries = self.outbox.pending(self.settings.client_batch)
            if not entries:
                if recovering is not None:
                    self.last_sync_s, recovering = time.monotonic() - recovering, None
                await self._idle()
                continue
            try:
                done = await self.transport.send(entries)
            except HubUnreachable as exc:
                self._lost(str(exc))
                await self.transport.close()
                continue
            self.outbox.mark_sent(done.sent)
            for seq, why in done.rejected:
                log.error("outbox event %d will never be taken by the hub: %s", seq, why)
                self.outbox.reject(seq, why)
            ids = {entry.seq: entry.event_id for entry in entries}
            self.cache.confirm(*(ids[seq] for seq, *_ in done.sent))

    async def _idle(self) -> None:
        """Wait for a publish; on a quiet link, check it now and then (loss is noticed
        without anything to send)."""
        try:
            await asyncio.wait_for(self._wake.wait(), IDLE_CHECK_S)
        except TimeoutError:
            try:
                await self.transport.probe()
            except HubUnreachable as exc:
                self._lost(str(exc))
                await self.transport.close()


def _host_id() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:100] or "client"
