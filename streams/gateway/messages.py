"""From a Kafka record to what the gateway hands out: a CloudEvents JSON message.

Routing reads only the record's `ce_*` headers (binary mode, `streams.wire.cloudevents`),
so an event no connected system wants is never decoded. The message is CloudEvents'
structured JSON format, its `data` the design's whole event (money as decimal strings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streams.core.kinds import POLICIES, REFUSAL_TOPIC, EventKind
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map, headers_for, refusal_headers
from streams.wire.codec import ConfluentAvroCodec

CURSOR_ATTRIBUTE = "hubcursor"
"""CloudEvents extension carrying the resume cursor (lower-case alphanumerics, per the spec)."""
CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True)
class Routing:
    """Who an event is for, from its headers alone."""

    base_topic: str
    ce_type: str
    event_id: str
    hotel_id: str
    targets: frozenset[str]
    priority: str
    source_system: str

    @property
    def critical(self) -> bool:
        return self.priority == "CRITICAL"


@dataclass(frozen=True)
class Outgoing:
    """A decoded event as it leaves the gateway."""

    routing: Routing
    entity: str
    """The record key (`hotel:entity`): one entity's events keep their order."""
    body: str
    """The CloudEvents JSON, without a cursor (the webhook body)."""

    def with_cursor(self, cursor: str) -> str:
        return f'{self.body[:-1]},"{CURSOR_ATTRIBUTE}":"{cursor}"}}'

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Outgoing:
        """Back from a CloudEvents JSON message (a dead letter being replayed)."""
        source = str(message.get("source", ""))
        routing = Routing(
            base_topic="", ce_type=message["type"], event_id=message["id"],
            hotel_id=message.get("hotelid", ""),
            targets=frozenset(filter(None, str(message.get("targets", "")).split(","))),
            priority=message.get("priority", ""), source_system=source.rsplit("/", 1)[-1])
        entity = f"{routing.hotel_id}:{message.get('subject', '')}"
        return cls(routing, entity, json.dumps(message, separators=(",", ":"),
                                               ensure_ascii=False))


class EventTopics:
    """The topics the gateway hands out, and which contract each holds."""

    def __init__(self, settings: HubSettings) -> None:
        self.kinds = {settings.topic(policy.topic): kind for kind, policy in POLICIES.items()}
        self.refusals = settings.topic(REFUSAL_TOPIC)
        self.base = {settings.topic(p.topic): p.topic for p in POLICIES.values()}
        self.base[self.refusals] = REFUSAL_TOPIC

    @property
    def names(self) -> list[str]:
        return [*self.kinds, self.refusals]


def routing_of(base_topic: str, headers: dict[str, str]) -> Routing | None:
    """None when the record carries no CloudEvents headers (then decode it to route it)."""
    ce_type = headers.get("ce_type")
    if ce_type is None or "ce_id" not in headers:
        return None
    source = headers.get("ce_source", "")
    return Routing(
        base_topic=base_topic, ce_type=ce_type, event_id=headers["ce_id"],
        hotel_id=headers.get("ce_hotelid", ""),
        targets=frozenset(filter(None, headers.get("ce_targets", "").split(","))),
        priority=headers.get("ce_priority", ""),
        source_system=source.rsplit("/", 1)[-1],
    )


class MessageReader:
    """Decodes records of the event topics into `Outgoing` messages."""

    def __init__(self, codec: ConfluentAvroCodec, topics: EventTopics) -> None:
        self.codec, self.topics = codec, topics

    def routing(self, topic: str, raw_headers: Any) -> Routing | None:
        return routing_of(self.topics.base.get(topic, topic), header_map(raw_headers))

    async def outgoing(self, topic: str, key: bytes | None, value: bytes,
                       routing: Routing | None) -> Outgoing:
        """`CodecError` when the record is not a valid record of its topic's contract."""
        base = self.topics.base.get(topic, topic)
        if topic == self.topics.refusals:
            refusal = await self.codec.decode_refusal(value)
            found = routing or routing_of(base, header_map(refusal_headers(refusal)))
            data = refusal.model_dump(mode="json")
            time = data["refused_at"]
        else:
            kind: EventKind = self.topics.kinds[topic]
            event = self.codec.decode_known(kind, value) or await self.codec.decode(kind, value)
            found = routing or routing_of(base, header_map(headers_for(event)))
            data = event.model_dump(mode="json")
            time = data["occurred_at"]
        assert found is not None
        entity = (key or b"").decode(errors="replace")
        return Outgoing(found, entity, _cloudevent(found, data, time, entity.partition(":")[2]))


def _cloudevent(routing: Routing, data: dict[str, Any], time: str, subject: str) -> str:
    message = {
        "specversion": "1.0",
        "id": routing.event_id,
        "type": routing.ce_type,
        "source": f"/{routing.hotel_id}/{routing.source_system}",
        "time": time.replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "hotelid": routing.hotel_id,
        "targets": ",".join(sorted(routing.targets)),
        **({"subject": subject} if subject else {}),
        **({"priority": routing.priority} if routing.priority else {}),
        "data": data,
    }
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)

