"""Dead letters of the Faust agents: a record an agent cannot decode is kept, with where it
came from and why (the header layout is `streams.wire.deadletters`)."""

from __future__ import annotations

from collections.abc import Mapping

from faust.types import EventT, TopicT

from streams.ops.metrics import events_deadlettered_total
from streams.wire.deadletters import deadletter_headers


async def dead_letter(topic: TopicT, event: EventT[bytes], error: BaseException) -> None:
    """Send the original bytes on and wait for the broker, so nothing is lost before the ack."""
    message = event.message
    raw = message.headers or []
    original = list(raw.items() if isinstance(raw, Mapping) else raw)
    headers = original + deadletter_headers(
        topic=message.topic, partition=message.partition, offset=message.offset, error=error
    )
    value = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
    key = message.key if isinstance(message.key, bytes) or message.key is None else None
    sent = await topic.send(key=key, value=value, headers=headers)
    await sent
    events_deadlettered_total.labels(topic=message.topic).inc()
