"""`POST /events`: the design's event as JSON, published as the system that sent it.

The gateway produces with the caller's own credential (Kafka SASL and the record
signature), so the broker's ACLs and the hub's origin check judge the system itself, not the
gateway. An `Idempotency-Key` (or an `event_id` stated again) never publishes twice: the
key fixes the event_id (uuid5), and every answered request is kept a day in a compacted
topic that every gateway process reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid5

from pydantic import SecretStr

from streams.core.documents import DOCUMENT_ID_NAMESPACE
from streams.core.exceptions import EventValidationError, PublishForbidden
from streams.core.kinds import System
from streams.gateway.callers import Caller
from streams.gateway.compacted import CompactedView
from streams.runners.publisher import HotelEventPublisher, PublishedEvent
from streams.settings import HubSettings
from streams.wire.codec import SchemaSource
from streams.wire.topics import gateway_requests_topic

MAX_IDEMPOTENCY_KEY = 255


class KeyReused(Exception):
    """An Idempotency-Key sent again with another event."""


@dataclass(frozen=True)
class Accepted:
    event_id: str
    topic: str
    partition: int
    offset: int
    replayed: bool


def fingerprint(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Publishing:
    def __init__(self, settings: HubSettings, registry: SchemaSource) -> None:
        self.settings, self.registry = settings, registry
        self.requests = CompactedView(settings, gateway_requests_topic(settings),
                                      name="requests")
        self._publishers: dict[tuple[str, str | None], HotelEventPublisher] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        await self.requests.start()

    async def stop(self) -> None:
        for publisher in self._publishers.values():
            await publisher.stop()
        self._publishers.clear()
        await self.requests.stop()

    async def _publisher(self, caller: Caller) -> HotelEventPublisher:
        """One producer per credential the callers use (a rotated secret gets a new one)."""
        key = (caller.username, hashlib.sha256((caller.secret or "").encode()).hexdigest())
        found = self._publishers.get(key)
        if found is None:
            settings = self.settings.model_copy(update={
                "identity": caller.name, "credentials_file": None,
                "username": caller.username if caller.secret is not None else None,
                "password": SecretStr(caller.secret) if caller.secret is not None else None})
            found = HotelEventPublisher(system=System(caller.name), registry=self.registry,
                                        settings=settings)
            await found.start()
            self._publishers[key] = found
        return found

    async def publish(self, caller: Caller, document: Mapping[str, Any],
                      idempotency_key: str | None) -> Accepted:
        """Validate and publish; `EventValidationError` (422), `PublishForbidden` (403),
        `KeyReused` (422) or `PublishError` (503) otherwise."""
        if caller.name not in {system.value for system in System}:
            raise PublishForbidden(f"identity {caller.name} is not a system and publishes "
                                   "nothing; systems publish as themselves")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise EventValidationError("invalid Idempotency-Key", errors={
                "Idempotency-Key": f"1 to {MAX_IDEMPOTENCY_KEY} characters"})
        stated = document.get("event_id")
        body = dict(document)
        if idempotency_key is not None and not stated:
            body["event_id"] = str(uuid5(DOCUMENT_ID_NAMESPACE,
                                         f"{caller.name}\x00{idempotency_key}"))
        publisher = await self._publisher(caller)
        event = publisher.build(body)
        keys = [f"{caller.name}:event:{event.event_id}"]
        if idempotency_key is not None:
            keys.insert(0, f"{caller.name}:key:{idempotency_key}")
        print_ = fingerprint(document)
        if len(self._locks) > 10_000:
            self._locks = {k: held for k, held in self._locks.items() if held.locked()}
        async with self._locks.setdefault(keys[0], asyncio.Lock()):
            for key in keys:
                seen = self.requests.get(key)
                if seen is not None:
                    if key != keys[-1] and seen["fingerprint"] != print_:
                        raise KeyReused(f"Idempotency-Key {idempotency_key!r} was used "
                                        f"for another event ({seen['event_id']})")
                    return Accepted(seen["event_id"], seen["topic"], seen["partition"],
                                    seen["offset"], replayed=True)
            published = await publisher.send(event)
            await self._remember(keys, published, print_)
        return Accepted(str(event.event_id), published.topic, published.partition,
                        published.offset, replayed=False)

    async def _remember(self, keys: list[str], published: PublishedEvent, print_: str) -> None:
        answer = {"event_id": str(published.event.event_id), "topic": published.topic,
                  "partition": published.partition, "offset": published.offset,
                  "fingerprint": print_, "at": datetime.now(UTC).isoformat()}
        for key in keys:
            await self.requests.put(key, answer)

