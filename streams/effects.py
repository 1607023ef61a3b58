"""What a rule's outcome publishes: refusals, derived room events, availability deltas.

One mapping from an outcome to records, used by both senders: the Faust agents
(`publish_outcome`, at least once, idempotent downstream) and the stay processor
(inside its Kafka transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.cloudevents import Headers, headers_for, refusal_headers
from streams.codec import ConfluentAvroCodec
from streams.kinds import POLICIES, REFUSAL_TOPIC, EventKind
from streams.metrics import refusals_total
from streams.models import record_key
from streams.rules import Outcome
from streams.settings import HubSettings, get_settings
from streams.state import table_key


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes
    headers: Headers = field(default_factory=list)


def delta_topic(settings: HubSettings) -> str:
    """Availability deltas, named for the app: another deployment replaying the same
    events keeps its own deltas instead of adding to these."""
    return f"{settings.app_id}.inventory-deltas"


def stays_topic(settings: HubSettings) -> str:
    """The stay processor's committed state log (compacted)."""
    return f"{settings.app_id}.stays"


def outcome_records(outcome: Outcome[Any], *, settings: HubSettings,
                    codec: ConfluentAvroCodec) -> list[OutRecord]:
    """The records an outcome publishes, in order; counts its refusals."""
    records = []
    for refusal in outcome.refusals:
        records.append(OutRecord(
            settings.topic(REFUSAL_TOPIC), table_key(refusal.hotel_id, refusal.entity_id).encode(),
            codec.encode(refusal), refusal_headers(refusal)))
        refusals_total.labels(reason=refusal.reason_code.value).inc()
    for room_event in outcome.room_events:
        records.append(OutRecord(
            settings.topic(POLICIES[EventKind.ROOM].topic), record_key(room_event),
            codec.encode(room_event), headers_for(room_event)))
    for delta in outcome.deltas:
        records.append(OutRecord(
            delta_topic(settings), table_key(delta.hotel_id, delta.room_type).encode(),
            delta.model_dump_json().encode()))
    return records


async def publish_outcome(outcome: Outcome[Any]) -> None:
    """Send an agent's outcome through the Faust app's producer."""
    if not (outcome.refusals or outcome.room_events or outcome.deltas):
        return
    from streams.app import app
    from streams.runtime import shared_codec

    codec = shared_codec()
    await codec.ensure_registered()
    for record in outcome_records(outcome, settings=get_settings(), codec=codec):
        await app.send(record.topic, key=record.key, value=record.value,
                       headers=record.headers, key_serializer="raw", value_serializer="raw")
