"""What a step publishes: its state changes, refusals and derived room events, as records.

The hotel processor sends these inside the transaction of the record that caused
them, so a state change and what it announces are visible together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.core.exceptions import RecordTooLarge
from streams.core.kinds import POLICIES, REFUSAL_TOPIC, EventKind
from streams.core.models import record_key
from streams.core.state import table_key
from streams.core.step import Step
from streams.settings import HubSettings
from streams.wire.cloudevents import Headers, headers_for, refusal_headers
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.topics import state_topic

DERIVED_BY = "hub.derived-by"
"""Header on the room events a hub app derived from a movement and applied in the same
transaction (value: its app id). Every hub app derives its own, so none reads these."""
STATE_KEY_SEPARATOR = b"|"


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes
    headers: Headers = field(default_factory=list)
    partition: int | None = None
    """None lets the producer's partitioner (murmur2 of the key) choose."""
    timestamp_ms: int | None = None
    """None stamps the record when it is sent; a re-keyed record keeps its producer's."""

    @property
    def size(self) -> int:
        return len(self.key) + len(self.value) + sum(
            len(name) + len(value) for name, value in self.headers)




def state_key(tag: str, key: bytes) -> bytes:
    """State log key: the kind of state, then `hotel_id:entity_id` (ids may hold any byte)."""
    return tag.encode() + STATE_KEY_SEPARATOR + key


def split_state_key(raw: bytes) -> tuple[str, bytes]:
    tag, _, key = raw.partition(STATE_KEY_SEPARATOR)
    return tag.decode(), key


def step_records(step: Step, *, partition: int, settings: HubSettings,
                 codec: ConfluentAvroCodec) -> list[OutRecord]:
    """The records a step publishes, in order; raises RecordTooLarge before any is sent."""
    records = [
        OutRecord(state_topic(settings), state_key(tag, key),
                  state.model_dump_json().encode(), partition=partition)
        for (tag, key), state in step.changes.items()
    ]
    for refusal in step.refusals:
        records.append(OutRecord(
            settings.topic(REFUSAL_TOPIC), table_key(refusal.hotel_id, refusal.entity_id).encode(),
            codec.encode(refusal), refusal_headers(refusal)))
    for room_event in step.room_events:
        records.append(OutRecord(
            settings.topic(POLICIES[EventKind.ROOM].topic), record_key(room_event),
            codec.encode(room_event),
            [*headers_for(room_event), (DERIVED_BY, settings.app_id.encode())]))
    for record in records:
        if record.size > settings.max_record_bytes:
            raise RecordTooLarge(
                f"{record.topic} record of {record.size} bytes for {record.key[:200]!r} is over "
                f"{settings.max_record_bytes} bytes (HOTELHUB_MAX_RECORD_BYTES)")
    return records
