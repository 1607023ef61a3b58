"""What every rule shares: the outcome it returns, refusals, and the sender's versions
that tell a resend or a stale update from news."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from streams.core.kinds import event_type
from streams.core.models import (
    CheckinCheckoutEvent,
    HotelEvent,
    Refusal,
    RefusalReason,
    RoomEvent,
    entity_id,
)
from streams.core.state import InventoryDelta, Versioned

S = TypeVar("S")

_DERIVED = uuid.UUID("5f0b6a1e-6d0c-4c55-9d1e-8f1b3c0a7e21")
"""Namespace of ids the hub derives from other events' ids (uuid5), stable across replays."""


@dataclass
class Outcome(Generic[S]):
    """What applying one event decided: the new state, and what to publish because of it."""

    state: S | None = None
    """The state to write; None leaves the table as it is."""
    duplicate: bool = False
    refusals: list[Refusal] = field(default_factory=list)
    room_events: list[RoomEvent] = field(default_factory=list)
    deltas: list[InventoryDelta] = field(default_factory=list)
    released: list[CheckinCheckoutEvent] = field(default_factory=list)
    """Movements that waited for this booking and are to be applied now."""


def published_at(event: HotelEvent) -> datetime:
    """When the publisher sent the event (`synced_at`, stamped by the publisher, not chosen
    by the sender), else when it says it happened."""
    return event.synced_at or event.occurred_at


def derived_id(event_id: object, purpose: str) -> uuid.UUID:
    return uuid.uuid5(_DERIVED, f"{event_id}:{purpose}")


def refuse(event: HotelEvent, code: RefusalReason, reason: str, current: object = None) -> Refusal:
    return Refusal(
        refusal_id=derived_id(event.event_id, "refusal"),
        refused_event_id=event.event_id,
        event_type=event_type(event.type, event.action),
        hotel_id=event.hotel_id,
        entity_id=entity_id(event),
        origin_system=event.origin_system,
        updated_by_system=event.updated_by_system,
        reason_code=code,
        reason=reason,
        current_state=current.model_dump_json() if hasattr(current, "model_dump_json") else None,
        created_offline=event.created_offline,
        refused_at=event.synced_at or event.occurred_at,
    )


def refused(event: HotelEvent, code: RefusalReason, reason: str, current: object) -> Outcome[S]:
    return Outcome(refusals=[refuse(event, code, reason, current)])


def already_applied(current: Versioned | None, event: HotelEvent, version: int
                     ) -> Outcome[S] | None:
    """A resend (silent) or a stale update (refused), judged by the sender's own versions.

    Each system's versions order only that system's changes, so one system's counter
    can never lock another system out; the high-water mark is exact however long ago
    the event was first applied.
    """
    if current is None:
        return None
    if current.applied.seen(event.event_id):  # type: ignore[attr-defined]
        return Outcome(duplicate=True)
    conflict = offline_conflict(current, event)
    if conflict is not None:
        return refused(event, RefusalReason.OFFLINE_CONFLICT, conflict, current)
    system = event.updated_by_system
    seen = current.version_of(system)
    if seen is not None and version <= seen:
        return refused(event, RefusalReason.STALE_VERSION,
                        f"version {version} from {system} is not newer than version {seen} "
                        f"already applied from {system}; nothing changed (an event sent "
                        "again long after it was applied is answered this way too)", current)
    return None


def offline_conflict(current: Versioned, event: HotelEvent) -> str | None:
    """Why an event made offline may not apply, or None.

    The rule: a change made offline never overrides a change that happened after it and
    is already applied (by `occurred_at`, whoever made it); the newer change stands and
    the offline one is refused as a conflict, which reaches its sender and every system
    the event targets. An offline change newer than everything applied is applied as
    usual, so a front desk's own offline work, synced in order, never conflicts with
    itself.
    """
    applied = current.applied  # type: ignore[attr-defined]
    if not event.created_offline or applied.updated_at is None:
        return None
    if event.occurred_at >= applied.updated_at:
        return None
    by = applied.updated_by or "another system"
    return (f"made offline at {event.occurred_at.isoformat()}, before {applied.last_event_type} "
            f"from {by} at {applied.updated_at.isoformat()}, which is applied and stands; "
            "review the current state and send the change again if it still holds")


def versions_with(current: Versioned | None, event: HotelEvent, version: int) -> dict[str, int]:
    return {**(current.versions if current else {}), event.updated_by_system: version}
