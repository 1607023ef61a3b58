"""The webhook dead-letter topic: deliveries that ended without a 2xx, with every attempt.

A record is JSON keyed by endpoint id: the endpoint, why it ended there, every attempt's
outcome and the CloudEvent itself, so a replay needs nothing else. Kept 30 days.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.core.kinds import WEBHOOK_DEADLETTER_TOPIC
from streams.gateway.feed import partitions_of
from streams.settings import HubSettings


class DeadReason(StrEnum):
    RETRIES_EXHAUSTED = "retries_exhausted"
    ENDPOINT_DISABLED = "endpoint_disabled"
    ENDPOINT_PAUSED = "endpoint_paused"
    BACKLOG_FULL = "backlog_full"


@dataclass(frozen=True)
class Attempt:
    number: int
    at: str
    outcome: str
    """`success`, `http_<status>`, `timeout` or `connection_error`."""
    duration_ms: int
    http_status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    endpoint_id: str
    system: str
    url: str
    reason: DeadReason
    dead_at: str
    event: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)

    def record(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def parse(cls, value: bytes) -> DeadLetter:
        data = json.loads(value)
        return cls(endpoint_id=data["endpoint_id"], system=data["system"], url=data["url"],
                   reason=DeadReason(data["reason"]), dead_at=data["dead_at"],
                   event=data["event"], attempts=[Attempt(**a) for a in data["attempts"]])


async def read_dead_letters(settings: HubSettings, endpoint_id: str,
                            since: datetime | None = None, limit: int | None = None
                            ) -> list[DeadLetter]:
    """The endpoint's dead letters written up to now, in the order they died, from `since` on."""
    topic = settings.topic(WEBHOOK_DEADLETTER_TOPIC)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_auth(), group_id=None,
        enable_auto_commit=False, client_id="hotelhub-gateway-deadletters")
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        partitions = partitions_of(settings, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        left = {tp for tp in partitions if end[tp] > 0}
        while left:
            batches = await consumer.getmany(*left, timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if record.key == endpoint_id.encode() and record.value is not None:
                        letter = DeadLetter.parse(record.value)
                        if since is None or datetime.fromisoformat(letter.dead_at) >= since:
                            found.append(letter)
            for tp in list(left):
                if await consumer.position(tp) >= end[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    # One endpoint's letters share a partition (keyed by endpoint id): read order is their order.
    return found[-limit:] if limit else found
