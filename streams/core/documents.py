"""From a JSON document to a valid, enriched event: what every way in checks first.

Pure (no Kafka): the publisher, the CLI and the tests build events here, and a document
that is not a valid event of its kind, or comes from a system that may not publish it,
is refused before anything is sent, naming each field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from pydantic import ValidationError

from streams.core.exceptions import EventValidationError, PublishForbidden
from streams.core.kinds import POLICIES, EventKind, System
from streams.core.limits import Limits, violations
from streams.core.models import EVENT_MODELS, HotelEvent

_FIXED_BY_KIND = ("priority", "sync_mode", "delivery_guarantee", "targets")

DOCUMENT_ID_NAMESPACE = UUID("5d0c4d39-53c5-4b0e-9a8f-0f7f3e5a1c61")
"""uuid5 namespace of event ids derived from documents (`document_event_id`); never change it,
or a re-published file would get new ids."""


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic errors as `{"data.total_amount": "why"}`, the shape every caller sees."""
    return {
        ".".join(str(part) for part in error["loc"]) or "(event)": error["msg"]
        for error in exc.errors()
    }


def to_millis(moment: datetime) -> datetime:
    """Avro timestamp-millis keeps milliseconds; trim now so the event round-trips equal."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def document_event_id(
    document: Mapping[str, Any], *, publisher: System, default_hotel_id: str
) -> UUID:
    """A deterministic event id for a JSON document that states none.

    uuid5 over the canonical JSON of the document as it will be published (its hotel
    and publishing system filled in), so publishing the same file again, e.g. after a
    timeout, repeats the same events and the hub's dedupe drops them. Two identical
    documents are one event; state an `event_id` to publish twin events.
    """
    canonical = json.dumps(
        {**document, "hotel_id": document.get("hotel_id") or default_hotel_id,
         "updated_by_system": publisher.value},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return uuid5(DOCUMENT_ID_NAMESPACE, canonical)


def check_publisher(kind: EventKind, publisher: System) -> None:
    """Raise PublishForbidden unless the policies let `publisher` publish `kind` events."""
    publishers = POLICIES[kind].publishers
    if publisher not in publishers:
        allowed = ", ".join(sorted(publishers))
        raise PublishForbidden(f"{publisher} may not publish {kind} events (only {allowed})")


def check_built(event: HotelEvent, publisher: System) -> None:
    """An already built event checked as `build_event` checks a document: a kind
    `publisher` may publish, naming `publisher` as its `updated_by_system`."""
    check_publisher(EventKind(event.type), publisher)
    if event.updated_by_system != publisher:
        raise PublishForbidden(
            f"event {event.event_id} names updated_by_system {event.updated_by_system}; "
            f"this publisher is {publisher}")


def build_event(
    document: Mapping[str, Any],
    *,
    publisher: System,
    default_hotel_id: str,
    now: datetime | None = None,
    limits: Limits | None = None,
) -> HotelEvent:
    """Validate and enrich an event document; raise before anything is sent.

    `document` holds `type`, `action` and `data`, and may hold `hotel_id`,
    `event_id`, `occurred_at`, `origin_system`, `correlation_id`, `causation_id`.
    Priority, sync mode, delivery guarantee and targets are fixed by the kind;
    a document that states other values is refused, so nobody downgrades a
    CRITICAL event. An event beyond the hotel's `limits` (default: `Limits()`)
    is refused the same way, naming the field.
    """
    raw_kind = document.get("type")
    try:
        kind = EventKind(str(raw_kind))
    except ValueError:
        allowed = ", ".join(kind.value for kind in EventKind)
        raise EventValidationError(
            "unknown event kind", errors={"type": f"{raw_kind!r} is not one of {allowed}"}
        ) from None
    check_publisher(kind, publisher)
    policy = POLICIES[kind]
    fixed = {
        "priority": policy.priority.value,
        "sync_mode": policy.sync_mode.value,
        "delivery_guarantee": policy.delivery_guarantee.value,
        "targets": [target.value for target in policy.targets],
    }
    conflicts = {
        name: f"{kind} events are {fixed[name]!r}; {document[name]!r} was given"
        for name in _FIXED_BY_KIND
        if name in document and _normalise(document[name]) != fixed[name]
    }
    if "updated_by_system" in document and document["updated_by_system"] != publisher:
        conflicts["updated_by_system"] = f"this publisher is {publisher}"
    if conflicts:
        raise EventValidationError(f"invalid {kind} event", errors=conflicts)

    moment = now or datetime.now(UTC)
    enriched = {
        **document,
        **fixed,
        "event_id": document.get("event_id") or uuid4(),
        "hotel_id": document.get("hotel_id") or default_hotel_id,
        "origin_system": document.get("origin_system") or publisher.value,
        "updated_by_system": publisher.value,
        "occurred_at": document.get("occurred_at") or moment,
        "synced_at": to_millis(moment),
    }
    try:
        event = EVENT_MODELS[kind].model_validate(enriched)
    except ValidationError as exc:
        raise EventValidationError(f"invalid {kind} event", errors=field_errors(exc)) from exc
    beyond = violations(event, limits or Limits())
    if beyond:
        raise EventValidationError(f"invalid {kind} event", errors=beyond)
    return event.model_copy(update={"occurred_at": to_millis(event.occurred_at)})


def _normalise(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [str(getattr(item, "value", item)) for item in value]
    return str(getattr(value, "value", value))
