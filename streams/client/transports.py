"""How a client's outbox reaches the hub: Kafka transactions, or the gateway's REST API.

Both send the outbox's entries as they were accepted (same event_id, same document), so a
resend is recognised: Kafka by the sync checkpoint written in each transaction
(`checkpoints`), the gateway by the stated event_id it remembers a day. Either raises
`HubUnreachable` when the link is gone; the client then goes offline and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from streams.client.checkpoints import checkpoint, last_checkpoint
from streams.client.outbox import Entry, Outbox
from streams.core.documents import field_errors, to_millis
from streams.core.exceptions import (
    BrokerUnavailable,
    EventValidationError,
    HubError,
    PublishError,
    RegistryError,
)
from streams.core.kinds import EventKind, System, outbox_topic
from streams.core.models import EVENT_MODELS, HotelEvent
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient

log = logging.getLogger(__name__)


class HubUnreachable(Exception):
    """The hub cannot be reached now; the message says which part and why."""


@dataclass
class Sent:
    """What one `send` did: entries now in Kafka, and entries the hub will never take."""

    sent: list[tuple[int, str | None, int | None, int | None]] = field(default_factory=list)
    """(seq, topic, partition, offset)."""
    rejected: list[tuple[int, str]] = field(default_factory=list)
    """(seq, why)."""


class Transport(Protocol):
    name: str

    async def connect(self) -> None:
        """Reach the hub, or raise HubUnreachable."""

    async def reconcile(self, outbox: Outbox) -> int:
        """Mark what the hub already holds of the outbox (after a crash); returns how many."""

    async def send(self, entries: Sequence[Entry]) -> Sent:
        """Send `entries` (oldest first, per entity in order), or raise HubUnreachable."""

    async def probe(self) -> None:
        """Raise HubUnreachable when the link is gone (called while idle)."""

    async def reachable(self) -> bool:
        """A cheap look (a TCP connect) whether connecting is worth trying: offline, the
        client asks this often, and connects only when it says yes."""

    async def close(self) -> None: ...


def transactional_id(system: str, client_id: str) -> str:
    """Starts with the system's name: the ACLs let a system use only ids of its own."""
    return f"{system}-outbox-{client_id}"


class KafkaTransport:
    """Each sync round is one Kafka transaction: the round's events and its checkpoint.

    Starting the transactional producer fences an earlier incarnation of this client and
    aborts its open transaction, so after a SIGKILL the checkpoint read next is the truth.
    """

    name = "kafka"

    def __init__(self, settings: HubSettings, system: System, client_id: str) -> None:
        self.settings, self.system, self.client_id = settings, system, client_id
        self.topic = settings.topic(outbox_topic(system.value))
        self._publisher: HotelEventPublisher | None = None
        self._registry: SchemaRegistryClient | None = None

    async def reachable(self) -> bool:
        return await _listening(self.settings.bootstrap_servers.split(",")[0],
                                self.settings.connect_timeout_s)

    async def connect(self) -> None:
        await self._stop_publisher()
        # One registry client for the transport's life: making its HTTP client (an SSL
        # context) on every try costs tens of milliseconds of a recovery.
        registry = self._registry = self._registry or SchemaRegistryClient.from_settings(
            self.settings, timeout_s=self.settings.connect_timeout_s)
        publisher = HotelEventPublisher(
            system=self.system, registry=registry, settings=self.settings,
            transactional_id=transactional_id(self.system.value, self.client_id))
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s * 2):
                await publisher.start()
        except (TimeoutError, BrokerUnavailable, RegistryError, OSError) as exc:
            await _quietly(publisher.stop(), self.settings.connect_timeout_s)
            raise HubUnreachable(f"Kafka at {self.settings.bootstrap_servers} or the registry "
                                 f"at {registry.url}: {_why(exc)}") from exc
        self._publisher = publisher

    async def reconcile(self, outbox: Outbox) -> int:
        try:
            found = await last_checkpoint(self.settings, self.topic, self.client_id)
        except BrokerUnavailable as exc:
            raise HubUnreachable(str(exc)) from exc
        return outbox.mark_sent_through(found.through_seq) if found else 0

    async def send(self, entries: Sequence[Entry]) -> Sent:
        publisher = self._publisher
        if publisher is None:
            raise HubUnreachable("not connected")
        done = Sent()
        good: list[tuple[Entry, HotelEvent]] = []
        now = sync_stamp()
        for entry in entries:
            try:
                event = EVENT_MODELS[EventKind(entry.kind)].model_validate_json(entry.text)
            except (ValueError, ValidationError) as exc:
                done.rejected.append((entry.seq, _problem(exc)))
            else:
                good.append((entry, event.model_copy(update={"synced_at": now})))
        if not good:
            return done
        marker = checkpoint(self.client_id, good[-1][0].seq).record(self.topic)
        try:
            # publish_atomically bounds its transaction; this bounds the abort after it,
            # which waits on a broker that may have gone.
            async with asyncio.timeout(self.settings.publish_timeout_s * 2):
                outcomes = await publisher.publish_atomically(
                    [event for _, event in good], also=[marker])
        except (TimeoutError, PublishError) as exc:
            await self._stop_publisher()  # a failed transactional producer is not reused
            raise HubUnreachable(f"Kafka did not commit {len(good)} event(s): {_why(exc)}"
                                 ) from exc
        for (entry, _), outcome in zip(good, outcomes, strict=True):
            if outcome.published is not None:
                where = outcome.published
                done.sent.append((entry.seq, where.topic, where.partition, where.offset))
            else:
                done.rejected.append((entry.seq, _problem(outcome.error)))
        return done

    async def probe(self) -> None:
        publisher = self._publisher
        if publisher is None:
            raise HubUnreachable("not connected")
        try:
            await publisher.metadata()
        except BrokerUnavailable as exc:
            raise HubUnreachable(str(exc)) from exc

    async def _stop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await _quietly(publisher.stop(), self.settings.connect_timeout_s)

    async def close(self) -> None:
        await self._stop_publisher()
        registry, self._registry = self._registry, None
        if registry is not None:
            await registry.aclose()


class GatewayTransport:
    """`POST /events` with the system's HTTP credential; the stated event_id makes a resend
    an answered `replayed: true`, never a second event. Entities go side by side, each
    entity's entries one after another."""

    name = "gateway"
    CONCURRENCY = 16

    def __init__(self, settings: HubSettings, system: System) -> None:
        self.settings, self.system = settings, system
        self.url = settings.gateway_url or f"http://127.0.0.1:{settings.gateway_port}"
        self._http: httpx.AsyncClient | None = None

    async def connect(self) -> None:
        await self.close()
        credentials = self.settings.credentials()
        self._http = httpx.AsyncClient(
            base_url=self.url, auth=credentials, timeout=self.settings.publish_timeout_s)
        await self.probe()

    async def reachable(self) -> bool:
        address = self.url.split("://", 1)[-1].split("/", 1)[0]
        if ":" not in address:
            address += ":443" if self.url.startswith("https") else ":80"
        return await _listening(address, self.settings.connect_timeout_s)

    async def reconcile(self, outbox: Outbox) -> int:
        return 0  # a resent entry is answered `replayed`: the gateway remembers its id

    async def send(self, entries: Sequence[Entry]) -> Sent:
        http = self._http
        if http is None:
            raise HubUnreachable("not connected")
        lanes: dict[str, list[Entry]] = {}
        for entry in entries:
            lanes.setdefault(entry.entity, []).append(entry)
        done = Sent()
        gate = asyncio.Semaphore(self.CONCURRENCY)
        lost: list[str] = []

        async def lane(queue: list[Entry]) -> None:
            async with gate:
                for entry in queue:
                    if lost:
                        return
                    try:
                        answer = await http.post("/events", json=entry.document)
                    except httpx.HTTPError as exc:
                        lost.append(f"{self.url}: {_why(exc)}")
                        return
                    if answer.status_code == 202:
                        body = answer.json()
                        done.sent.append((entry.seq, body.get("topic"), body.get("partition"),
                                          body.get("offset")))
                    elif answer.status_code in (400, 403, 422):
                        done.rejected.append((entry.seq, f"{answer.status_code} {answer.text}"))
                    else:  # 401 (credentials), 503 (broker away), 5xx: try again later
                        lost.append(f"{self.url} answered {answer.status_code}: "
                                    f"{answer.text[:200]}")
                        return

        await asyncio.gather(*(lane(queue) for queue in lanes.values()))
        if lost and not (done.sent or done.rejected):
            raise HubUnreachable(lost[0])
        if lost:
            log.warning("gateway lost during a sync round: %s", lost[0])
        return done

    async def probe(self) -> None:
        http = self._http
        if http is None:
            raise HubUnreachable("not connected")
        try:
            answer = await http.get("/readyz", timeout=self.settings.connect_timeout_s)
        except httpx.HTTPError as exc:
            raise HubUnreachable(f"gateway at {self.url}: {_why(exc)}") from exc
        if answer.status_code != 200:
            raise HubUnreachable(f"gateway at {self.url} is not ready: {answer.status_code} "
                                 f"{answer.text[:200]}")

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()


def transport_for(settings: HubSettings, system: System, client_id: str) -> Transport:
    if settings.client_transport == "gateway":
        return GatewayTransport(settings, system)
    return KafkaTransport(settings, system, client_id)


def _problem(error: BaseException | None) -> str:
    """Why the hub will never take an entry, naming each bad field where it can."""
    if isinstance(error, ValidationError):
        fields = field_errors(error)
        return str(EventValidationError("the outbox entry no longer fits its contract",
                                        errors=fields))
    return str(error) if error is not None else "not sent"


def sync_stamp() -> datetime:
    """`synced_at` of a round: when it is sent."""
    return to_millis(datetime.now(UTC))


async def _listening(address: str, timeout_s: float) -> bool:
    host, _, port = address.rpartition(":")
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, HubError) and str(exc) else repr(exc)


async def _quietly(closing: Any, timeout_s: float) -> None:
    """Close what may hang on a broker that went away: bounded, and never raising."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            await closing
