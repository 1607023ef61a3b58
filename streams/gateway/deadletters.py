"""The webhook dead-letter topic: deliveries that ended without a 2xx, with every attempt.

A record is JSON keyed by endpoint id: the endpoint, why it ended there, every attempt's
outcome and the CloudEvent itself, so a replay needs nothing else. Kept 30 days.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from streams.core.kinds import WEBHOOK_DEADLETTER_TOPIC
from streams.gateway.feed import Feed
from streams.settings import HubSettings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""`since` that starts a feed at the oldest record Kafka keeps."""


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


async def read_dead_letters(settings: HubSettings, endpoint_id: str | None,
                            since: datetime | None = None, limit: int | None = None
                            ) -> list[DeadLetter]:
    """The endpoint's dead letters written up to now, in the order they died, from `since` on;
    every endpoint's when `endpoint_id` is None (the live board counts a hotel's)."""
    feed = Feed(settings, [settings.topic(WEBHOOK_DEADLETTER_TOPIC)])
    await feed.start(since=EPOCH)
    found: list[DeadLetter] = []
    try:
        async for record in feed.to_end():
            if record.value is not None and (
                    endpoint_id is None or record.key == endpoint_id.encode()):
                letter = DeadLetter.parse(record.value)
                if since is None or datetime.fromisoformat(letter.dead_at) >= since:
                    found.append(letter)
    finally:
        await feed.stop()
    # One endpoint's letters share a partition (keyed by endpoint id): read order is their order.
    return found[-limit:] if limit else found
