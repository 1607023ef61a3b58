"""What one Kafka record of the hub becomes in the Event Storage: one row.

Pure functions, no database and no Kafka client, so the sink, its tests and a replay agree
on one mapping. Every record gets a `record_id` that is the same however often the record
is read: the event's own id, the refusal's id, or for the records that have no id of their
own (deliveries, dead letters) a UUID derived from the Kafka coordinates, which a replay of
the topic reproduces. The row is idempotent by it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from streams.core.kinds import (
    DEADLETTER_TOPIC,
    DELIVERY_LOG_TOPIC,
    POLICIES,
    REFUSAL_TOPIC,
    TYPE_PREFIX,
    WEBHOOK_DEADLETTER_TOPIC,
    EventKind,
    System,
)
from streams.wire.cloudevents import header_map
from streams.wire.deadletters import parse_dead_letter

_CE = "ce_"

COORDINATES_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e9a-8c21-4d0b7a9e6f13")
"""Namespace of the record ids derived from `topic:partition:offset`."""


class RecordType(StrEnum):
    EVENT = "event"
    REFUSAL = "refusal"
    DELIVERY = "delivery"
    DEAD_LETTER = "dead_letter"
    WEBHOOK_DEAD_LETTER = "webhook_dead_letter"
    UNDECODABLE = "undecodable"
    """A record of an event topic that could not be decoded: kept raw, never dropped."""


COLUMNS = (
    "record_id", "record_type", "event_id", "occurred_at", "event_type", "hotel_id",
    "entity_type", "entity_id", "source_system", "targets", "priority", "correlation_id",
    "causation_id", "created_offline", "payload", "headers", "kafka_topic", "kafka_partition",
    "kafka_offset", "kafka_timestamp",
)
"""The columns the sink writes, in this order (`StoredRecord.row`)."""


@dataclass(slots=True)
class Coordinates:
    """Where a record sits in Kafka; `topic` is the hub's name for it, without prefix."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    headers: Sequence[tuple[str, bytes | None]] = ()

    def derived_id(self) -> uuid.UUID:
        return uuid.uuid5(COORDINATES_NAMESPACE, f"{self.topic}:{self.partition}:{self.offset}")

    @property
    def time(self) -> datetime | None:
        if self.timestamp_ms is None or self.timestamp_ms < 0:
            return None
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)

    def header_text(self) -> dict[str, str]:
        return header_map(self.headers)  # type: ignore[arg-type]  # None values are skipped

    def extra_headers(self) -> str:
        """JSON of the headers an event's columns and payload do not hold already: not the
        CloudEvents attributes (`ce_*`, `content-type`), but signatures and the like."""
        kept = {name: value.decode(errors="replace") for name, value in self.headers
                if value is not None and name[:3] != _CE and name != "content-type"}
        return to_json(kept) if kept else "{}"


@dataclass(slots=True)
class StoredRecord:
    record_id: uuid.UUID
    record_type: RecordType
    event_id: uuid.UUID | None
    occurred_at: datetime
    event_type: str
    hotel_id: str | None
    entity_type: str | None
    entity_id: str | None
    source_system: str | None
    targets: list[str]
    priority: str | None
    correlation_id: str | None
    causation_id: str | None
    created_offline: bool
    payload: str
    """JSON text of the record as the design knows it (decimals as strings, ISO times)."""
    headers: str
    """JSON text of the record's headers."""
    at: Coordinates

    def row(self) -> tuple[Any, ...]:
        """The values of COLUMNS; text columns without NUL, which PostgreSQL's text refuses."""
        text = [_no_nul(value) for value in (
            self.event_type, self.hotel_id, self.entity_type, self.entity_id,
            self.source_system)]
        return (
            self.record_id, self.record_type.value, self.event_id, self.occurred_at, *text,
            [_no_nul(target) for target in self.targets], _no_nul(self.priority),
            _no_nul(self.correlation_id), _no_nul(self.causation_id), self.created_offline,
            self.payload, self.headers, self.at.topic, self.at.partition, self.at.offset,
            self.at.time,
        )


def _no_nul(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def _plain(value: Any) -> Any:
    """What orjson does not know itself: money (Decimal) stays exact, as text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def to_json(value: Any) -> str:
    """JSON for PostgreSQL: money stays a decimal string, times ISO 8601.

    jsonb refuses the NUL character (which JSON writes as \\u0000); no hotel field means
    one, so it becomes U+FFFD, the replacement character."""
    text = _dumps(value)
    if "\\u0000" in text:  # rare: clean the value itself, so escaped text stays intact
        text = _dumps(_without_nul(value))
    return text


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=_plain, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # beyond 64-bit integers (foreign JSON only): stdlib
        return json.dumps(value, default=_plain_json, ensure_ascii=False,
                          separators=(",", ":"))


def _plain_json(value: Any) -> Any:
    if isinstance(value, datetime | date | uuid.UUID):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    return _plain(value)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _time(value: Any, at: Coordinates) -> datetime:
    """The record's own time; else the Kafka timestamp (worked out only then), else now."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return at.time or datetime.now(UTC)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def event_row(kind: EventKind, record: Mapping[str, Any], at: Coordinates) -> StoredRecord:
    """A hotel event, as decoded from its Avro contract (a plain record, enums as text)."""
    data = record.get("data") or {}
    event_id = _uuid(record.get("event_id"))
    entity = data.get(POLICIES[kind].entity_key)
    return StoredRecord(
        record_id=event_id or at.derived_id(),
        record_type=RecordType.EVENT,
        event_id=event_id,
        occurred_at=_time(record.get("occurred_at"), at),
        event_type=f"{TYPE_PREFIX}.{kind.value}.{record.get('action')}",
        hotel_id=record.get("hotel_id"),
        entity_type=kind.value,
        entity_id=None if entity is None else str(entity),
        source_system=record.get("updated_by_system"),
        targets=list(record.get("targets") or ()),
        priority=record.get("priority"),
        correlation_id=record.get("correlation_id"),
        causation_id=record.get("causation_id"),
        created_offline=bool(record.get("created_offline")),
        payload=to_json(record),
        headers=at.extra_headers(),
        at=at,
    )


def refusal_row(record: Mapping[str, Any], at: Coordinates) -> StoredRecord:
    """A refusal: about the refused event (`event_id`), told to its sender and, for an
    offline conflict, to the kind's targets (the record's `ce_targets` header)."""
    headers = at.header_text()
    refused_type = str(record.get("event_type") or "")
    kind = refused_type.split(".")[1] if refused_type.count(".") >= 2 else None
    targets = [t for t in headers.get("ce_targets", "").split(",") if t] or [
        str(record.get("updated_by_system"))]
    return StoredRecord(
        record_id=_uuid(record.get("refusal_id")) or at.derived_id(),
        record_type=RecordType.REFUSAL,
        event_id=_uuid(record.get("refused_event_id")),
        occurred_at=_time(record.get("refused_at"), at),
        event_type=f"hotel.refusal.{record.get('reason_code')}",
        hotel_id=_text(record.get("hotel_id")),
        entity_type=kind,
        entity_id=_text(record.get("entity_id")),
        source_system=System.HOTEL_HUB.value,
        targets=targets,
        priority=None,
        correlation_id=None,
        causation_id=_text(record.get("refused_event_id")),
        created_offline=bool(record.get("created_offline")),
        payload=to_json(record),
        headers=at.extra_headers(),
        at=at,
    )


def delivery_row(record: Mapping[str, Any], at: Coordinates) -> StoredRecord:
    """One delivery attempt of the gateway (the design's EventDeliveryLog)."""
    return StoredRecord(
        record_id=at.derived_id(),
        record_type=RecordType.DELIVERY,
        event_id=_uuid(record.get("event_id")),
        occurred_at=_time(record.get("timestamp"), at),
        event_type=f"hotel.delivery.{record.get('delivery_status')}",
        hotel_id=_text(record.get("hotel_id")),
        entity_type=None,
        entity_id=None,
        source_system=_text(record.get("source_system")),
        targets=[str(record.get("target_system"))] if record.get("target_system") else [],
        priority=None,
        correlation_id=None,
        causation_id=_text(record.get("event_id")),
        created_offline=False,
        payload=to_json(record),
        headers=to_json(at.header_text()),
        at=at,
    )


def dead_letter_row(key: bytes | None, value: bytes | None, at: Coordinates) -> StoredRecord:
    """A record the hub could not decode, with where it came from and why."""
    letter = parse_dead_letter(partition=at.partition, offset=at.offset,
                               timestamp_ms=at.timestamp_ms or 0, key=key, value=value,
                               headers=at.headers)
    original = Coordinates(at.topic, at.partition, at.offset, at.timestamp_ms,
                           letter.original_headers).header_text()
    return StoredRecord(
        record_id=at.derived_id(),
        record_type=RecordType.DEAD_LETTER,
        event_id=_uuid(original.get("ce_id")),
        occurred_at=letter.time,
        event_type="hotel.deadletter",
        hotel_id=original.get("ce_hotelid"),
        entity_type=None,
        entity_id=None,
        source_system=_system(original.get("ce_source")),
        targets=[],
        priority=None,
        correlation_id=original.get("ce_correlationid"),
        causation_id=None,
        created_offline=False,
        payload=to_json({
            "source_topic": letter.source_topic, "source_partition": letter.source_partition,
            "source_offset": letter.source_offset, "reason": letter.reason,
            "key": _b64(key), "value": _b64(value),
        }),
        headers=to_json(at.header_text()),
        at=at,
    )


def webhook_dead_letter_row(value: bytes | None, at: Coordinates) -> StoredRecord:
    """A webhook delivery that ended without a 2xx (JSON written by the gateway)."""
    try:
        letter = json.loads(value or b"")
    except ValueError as exc:
        return undecodable_row(value, at, f"webhook dead letter is not JSON: {exc}")
    if not isinstance(letter, dict):
        return undecodable_row(value, at, "webhook dead letter is not a JSON object")
    found = letter.get("event")
    event: dict[str, Any] = found if isinstance(found, dict) else {}
    return StoredRecord(
        record_id=at.derived_id(),
        record_type=RecordType.WEBHOOK_DEAD_LETTER,
        event_id=_uuid(event.get("id")),
        occurred_at=_time(letter.get("dead_at"), at),
        event_type=f"hotel.webhook_deadletter.{letter.get('reason')}",
        hotel_id=_text(event.get("hotelid")),
        entity_type=None,
        entity_id=None,
        source_system=System.HOTEL_HUB.value,
        targets=[str(letter["system"])] if letter.get("system") else [],
        priority=None,
        correlation_id=_text(event.get("correlationid")),
        causation_id=_text(event.get("id")),
        created_offline=False,
        payload=to_json(letter),
        headers=to_json(at.header_text()),
        at=at,
    )


def undecodable_row(value: bytes | None, at: Coordinates, error: str) -> StoredRecord:
    """Kept raw with the reason, so the storage never silently misses a record."""
    headers = at.header_text()
    return StoredRecord(
        record_id=at.derived_id(),
        record_type=RecordType.UNDECODABLE,
        event_id=_uuid(headers.get("ce_id")),
        occurred_at=at.time or datetime.now(UTC),
        event_type="hotel.undecodable",
        hotel_id=headers.get("ce_hotelid"),
        entity_type=None,
        entity_id=None,
        source_system=_system(headers.get("ce_source")),
        targets=[],
        priority=None,
        correlation_id=headers.get("ce_correlationid"),
        causation_id=None,
        created_offline=False,
        payload=to_json({"error": error, "value": _b64(value)}),
        headers=to_json(headers),
        at=at,
    )


def _system(source: str | None) -> str | None:
    """`ce_source` is `/<hotel>/<system>`."""
    return source.rstrip("/").rpartition("/")[2] or None if source else None


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


STORED_TOPICS: tuple[str, ...] = (
    *(policy.topic for policy in POLICIES.values()),
    REFUSAL_TOPIC, DELIVERY_LOG_TOPIC, DEADLETTER_TOPIC, WEBHOOK_DEADLETTER_TOPIC,
)
"""The hub topics the sink keeps (names without the deployment's prefix)."""
