"""One event applied to one hotel's state: the pure step the hotel processor runs per record.

A hotel's stays, rooms, customers and inventory live in one partition, so one step
can read all it needs (the room a guest checks into, the free count of the night a
booking takes) and decide atomically: two bookings can never both take the last room.
Nothing here does I/O; the processor reads state through `read` and writes `changes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.limits import violations
from streams.models import (
    CheckinCheckoutEvent,
    CustomerEvent,
    HotelEvent,
    Refusal,
    RefusalReason,
    ReservationEvent,
    RoomEvent,
    record_key,
)
from streams.rules import (
    Outcome,
    RuleSettings,
    apply_customer,
    apply_movement,
    apply_reservation,
    apply_room,
    refuse,
)
from streams.state import (
    AvailabilityState,
    CustomerState,
    InventoryDelta,
    ReservationState,
    RoomState,
    apply_delta,
    table_key,
)

STAY, ROOM, CUSTOMER, AVAILABILITY = "stay", "room", "customer", "availability"
MODELS: dict[str, type[Any]] = {
    STAY: ReservationState, ROOM: RoomState, CUSTOMER: CustomerState,
    AVAILABILITY: AvailabilityState,
}
"""Each kind of state a hotel partition keeps, by its tag."""

StateKey = tuple[str, bytes]
"""(tag, `hotel_id:entity_id`)."""
Reader = Callable[[str, bytes], Any]


@dataclass
class Step:
    """What one event decided: state to write, refusals and derived room events to publish."""

    event: HotelEvent
    duplicate: bool = False
    changes: dict[StateKey, Any] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    room_events: list[RoomEvent] = field(default_factory=list)


class _View:
    """The partition's state as the step has changed it so far."""

    def __init__(self, read: Reader, changes: dict[StateKey, Any]) -> None:
        self._read = read
        self.changes = changes

    def get(self, tag: str, key: bytes) -> Any:
        if (tag, key) in self.changes:
            return self.changes[tag, key]
        return self._read(tag, key)

    def put(self, tag: str, key: bytes, state: Any) -> None:
        self.changes[tag, key] = state

    def add(self, deltas: list[InventoryDelta]) -> None:
        for delta in deltas:
            key = table_key(delta.hotel_id, delta.room_type).encode()
            self.put(AVAILABILITY, key, apply_delta(self.get(AVAILABILITY, key), delta))


def apply_event(event: HotelEvent, read: Reader, rules: RuleSettings) -> Step:
    """Decide `event` against the partition's state (`read(tag, key)`, None when unknown)."""
    step = Step(event)
    errors = violations(event, rules.limits)
    if errors:
        step.refusals.append(refuse(
            event, RefusalReason.INVALID_VALUE,
            "; ".join(f"{path}: {why}" for path, why in sorted(errors.items()))))
        return step
    view = _View(read, step.changes)
    if isinstance(event, ReservationEvent):
        _reservation(view, step, event, rules)
    elif isinstance(event, CheckinCheckoutEvent):
        step.duplicate = _movement(view, step, event, rules)
    elif isinstance(event, RoomEvent):
        key = record_key(event)
        step.duplicate = _settle(view, step, ROOM, key, apply_room(view.get(ROOM, key), event))
    elif isinstance(event, CustomerEvent):
        key = record_key(event)
        step.duplicate = _settle(view, step, CUSTOMER, key,
                                 apply_customer(view.get(CUSTOMER, key), event, rules))
    return step


def _settle(view: _View, step: Step, tag: str, key: bytes, outcome: Outcome[Any]) -> bool:
    """Take an outcome into the view and the step; True when it was a resend."""
    step.refusals += outcome.refusals
    if outcome.state is not None:
        view.put(tag, key, outcome.state)
    view.add(outcome.deltas)
    return outcome.duplicate


def _reservation(view: _View, step: Step, event: ReservationEvent, rules: RuleSettings) -> None:
    key = record_key(event)
    current: ReservationState | None = view.get(STAY, key)
    outcome = apply_reservation(current, event, rules)
    if outcome.duplicate:
        step.duplicate = True
        return
    if outcome.state is not None:
        problem = _inventory_problem(view, event, current, outcome.state, outcome.deltas, rules)
        if problem is not None:
            step.refusals.append(problem)
            return
    _settle(view, step, STAY, key, outcome)
    for movement in outcome.released:
        _movement(view, step, movement, rules)


def _inventory_problem(
    view: _View, event: ReservationEvent, current: ReservationState | None,
    stay: ReservationState, deltas: list[InventoryDelta], rules: RuleSettings,
) -> Refusal | None:
    """A booking may take only room types the hotel has, and only nights it can still sell."""
    assert stay.room_type is not None
    if current is None or not current.known or current.room_type != stay.room_type:
        known = view.get(AVAILABILITY, table_key(stay.hotel_id, stay.room_type).encode())
        if known is None or known.in_house <= 0:
            return refuse(event, RefusalReason.UNKNOWN_ENTITY,
                          f"hotel {stay.hotel_id} has no rooms of type {stay.room_type}",
                          current)
    for delta in deltas:
        taken = sorted(night for night, change in delta.sold.items() if change > 0)
        if not taken:
            continue
        inventory = view.get(AVAILABILITY, table_key(delta.hotel_id, delta.room_type).encode()
                             ) or AvailabilityState(hotel_id=delta.hotel_id,
                                                    room_type=delta.room_type)
        allowance = rules.allowance(delta.hotel_id, delta.room_type, inventory.in_house)
        short = [night for night in taken
                 if inventory.free(night) - delta.sold[night] < -allowance]
        if short:
            nights = ", ".join(night.isoformat() for night in short)
            return refuse(event, RefusalReason.OVERBOOKED,
                          f"room type {delta.room_type} at hotel {delta.hotel_id} is sold out "
                          f"on {nights} (overbooking allowance {allowance})", current)
    return None


def _movement(view: _View, step: Step, event: CheckinCheckoutEvent, rules: RuleSettings
              ) -> bool:
    key = record_key(event)
    room_id = event.data.room_id
    room_key = table_key(event.hotel_id, room_id).encode() if room_id else None
    room: RoomState | None = view.get(ROOM, room_key) if room_key else None
    outcome = apply_movement(view.get(STAY, key), room, event, rules)
    duplicate = _settle(view, step, STAY, key, outcome)
    for room_event in outcome.room_events:
        assert room_key is not None
        changed = apply_room(room, room_event)
        if changed.state is not None:
            _settle(view, step, ROOM, room_key, changed)
            if changed.state.status_at == room_event.occurred_at:
                step.room_events.append(room_event)  # announced only when it is the status
    return duplicate
