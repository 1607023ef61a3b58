"""Dead letters: a record an agent cannot decode is kept, with where it came from and why.

Header names follow Kafka Connect's `__connect.errors.*` so operators recognise them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from faust.types import EventT

from streams.channels import deadletter_topic
from streams.metrics import events_deadlettered_total

HEADER_PREFIX = "hub.errors."


def deadletter_headers(
    *, topic: str, partition: int, offset: int, error: BaseException
) -> list[tuple[str, bytes]]:
    fields = {
        "topic": topic,
        "partition": str(partition),
        "offset": str(offset),
        "exception.class": type(error).__name__,
        "exception.message": str(error)[:4000],
        "timestamp": datetime.now(UTC).isoformat(),
    }
    return [(HEADER_PREFIX + name, value.encode()) for name, value in fields.items()]


async def dead_letter(event: EventT[bytes], error: BaseException) -> None:
    """Send the original bytes on and wait for the broker, so nothing is lost before the ack."""
    message = event.message
    raw = message.headers or []
    original = list(raw.items() if isinstance(raw, Mapping) else raw)
    headers = original + deadletter_headers(
        topic=message.topic, partition=message.partition, offset=message.offset, error=error
    )
    value = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
    key = message.key if isinstance(message.key, bytes) or message.key is None else None
    sent = await deadletter_topic.send(key=key, value=value, headers=headers)
    await sent
    events_deadlettered_total.labels(topic=message.topic).inc()
