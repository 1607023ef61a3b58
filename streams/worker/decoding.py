"""Turns a Faust stream of raw records into typed events, dead-lettering what cannot be read."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from faust.types import StreamT, TopicT

from streams.core.exceptions import CodecError, RegistryUnavailable
from streams.core.kinds import POLICIES, EventKind
from streams.core.models import HotelEvent
from streams.ops.metrics import event_consume_delay_seconds, events_consumed_total
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec, registry_backoff_s
from streams.worker.deadletter import dead_letter

log = logging.getLogger(__name__)


async def _decode_when_registry_answers(codec: ConfluentAvroCodec, kind: EventKind,
                                        payload: bytes) -> HotelEvent:
    """A registry that is away holds the stream here (the record is not bad, so it is
    neither dead-lettered nor acknowledged) until it answers again."""
    for attempt in itertools.count():
        try:
            return await codec.decode(kind, payload)
        except RegistryUnavailable as exc:
            log.warning("waiting for the schema registry: %s", exc)
            await asyncio.sleep(registry_backoff_s(attempt))
    raise AssertionError("unreachable")


async def decoded(records: StreamT[bytes], *, settings: HubSettings, codec: ConfluentAvroCodec,
                  deadletters: TopicT) -> AsyncIterator[HotelEvent]:
    """Yield each record as its topic's event model; a bad record goes to the dead-letter topic.

    The agent goes on after a bad record: Faust acknowledges a message whose
    agent raised, so raising would lose it silently. A record whose writer schema the
    codec knows is decoded without a coroutine (`ConfluentAvroCodec.decode_known`); only
    the first record of a schema id asks the registry.
    """
    kinds = {settings.topic(policy.topic): kind for kind, policy in POLICIES.items()}
    counters: dict[EventKind, Any] = {}
    delays: dict[EventKind, Any] = {}
    decode_known = codec.decode_known
    now = datetime.now
    async for event in records.events():
        payload, kind = event.value, kinds[event.message.topic]
        try:
            if not isinstance(payload, bytes):
                raise CodecError(f"expected bytes, got {type(payload).__name__}")
            hotel_event = decode_known(kind, payload)
            if hotel_event is None:
                hotel_event = await _decode_when_registry_answers(codec, kind, payload)
        except CodecError as exc:
            await dead_letter(deadletters, event, exc)
            continue
        counter = counters.get(kind)
        if counter is None:  # a labelled child per kind, looked up once
            counter = counters[kind] = events_consumed_total.labels(kind=kind.value)
            delays[kind] = event_consume_delay_seconds.labels(kind=kind.value)
        counter.inc()
        delay_s = (now(UTC) - hotel_event.occurred_at).total_seconds()
        delays[kind].observe(delay_s if delay_s > 0.0 else 0.0)
        yield hotel_event
