"""What a step publishes: its state changes, refusals and derived room events, as records.

The hotel processor sends these inside the transaction of the record that caused
them, so a state change and what it announces are visible together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.core.exceptions import RecordTooLarge
from streams.core.kinds import POLICIES, REFUSAL_TOPIC, EventKind
from streams.core.models import record_key
from streams.core.reports.shares import DayFact, RoomFact
from streams.core.state import table_key
from streams.core.step import Step
from streams.settings import HubSettings
from streams.wire.cloudevents import Headers, headers_for, refusal_headers
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.partitioning import hotel_partition
from streams.wire.signing import Signer
from streams.wire.topics import report_facts_topic, state_topic

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


def step_records(step: Step, *, settings: HubSettings, codec: ConfluentAvroCodec,
                 signer: Signer | None = None, principal: str | None = None
                 ) -> list[OutRecord]:
    """The refusals, derived room events and report facts a step publishes, in order; raises
    RecordTooLarge before any is sent. Its state changes are written once per round
    (`state_records`).

    Room events are signed by the hub (`signer`): the room topic has other writers. An
    event refused because another system (`principal`) produced it is a refusal for
    that system too, not only for the one it named."""
    also = (principal,) if principal and principal != step.event.updated_by_system else ()
    records = []
    for refusal in step.refusals:
        records.append(OutRecord(
            settings.topic(REFUSAL_TOPIC), table_key(refusal.hotel_id, refusal.entity_id).encode(),
            codec.encode(refusal), refusal_headers(refusal, also=also)))
    room_topic = POLICIES[EventKind.ROOM].topic
    for room_event in step.room_events:
        key, value = record_key(room_event), codec.encode(room_event)
        headers = [*headers_for(room_event), (DERIVED_BY, settings.app_id.encode())]
        if signer is not None:
            headers = signer.sign(room_topic, key, value, headers)
        records.append(OutRecord(settings.topic(room_topic), key, value, headers))
    records += fact_records(step.facts, settings)
    check_sizes(records, settings)
    return records


def fact_records(facts: Iterable[DayFact | RoomFact], settings: HubSettings) -> list[OutRecord]:
    """Report facts, each in its hotel's partition of `<app>.report-facts`."""
    topic = report_facts_topic(settings)
    return [OutRecord(topic, table_key(fact.hotel_id, fact.room_type).encode(),
                      fact.model_dump_json().encode(),
                      partition=hotel_partition(fact.hotel_id, settings.topic_partitions))
            for fact in facts]


def encode_states(changes: Mapping[tuple[str, bytes], Any], *, partition: int,
                  settings: HubSettings) -> dict[tuple[str, bytes], OutRecord]:
    """State log records of `changes` (one per key: the last state a round left it in);
    raises RecordTooLarge if one is over the broker's limit."""
    records = {(tag, key): OutRecord(state_topic(settings), state_key(tag, key),
                                     state.model_dump_json().encode(), partition=partition)
               for (tag, key), state in changes.items()}
    check_sizes(records.values(), settings)
    return records


def check_sizes(records: Iterable[OutRecord], settings: HubSettings) -> None:
    for record in records:
        if record.size > settings.max_record_bytes:
            raise RecordTooLarge(
                f"{record.topic} record of {record.size} bytes for {record.key[:200]!r} is over "
                f"{settings.max_record_bytes} bytes (HOTELHUB_MAX_RECORD_BYTES)")


@dataclass
class Round:
    """What one partition's records decided in one round, before its transaction is sent.

    A key that several steps change is written to the state log once, with its last state
    (`states`): `overlay` holds the states as the round left them. In a `checked` round
    every step's states were serialised and size-checked as it was applied (today's
    dead-lettering of the step that makes a state too large); an unchecked round, the
    fast path, serialises each changed key once at the end, and is replayed checked if
    one of them is too large (`HotelProcessor._process`)."""

    checked: bool
    outs: list[OutRecord] = field(default_factory=list)
    """Forwards, dead letters, refusals and derived room events, in the order decided."""
    overlay: dict[tuple[str, bytes], Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    encoded: dict[tuple[str, bytes], OutRecord] = field(default_factory=dict)
    """Checked rounds: the state record of each key's last change, serialised already."""
    dead_letters: list[str] = field(default_factory=list)
    """The topic each dead letter was first written to (counted once committed)."""
    applied: list[tuple[str, int]] = field(default_factory=list)
    """Kind and producer timestamp of each event applied (its delay, once committed)."""

    def state_records(self, *, partition: int, settings: HubSettings) -> list[OutRecord]:
        """One state log record per changed key; raises RecordTooLarge (unchecked rounds)."""
        missing = {key: state for key, state in self.overlay.items() if key not in self.encoded}
        encoded = {**self.encoded, **encode_states(missing, partition=partition,
                                                   settings=settings)}
        return [encoded[key] for key in self.overlay]
