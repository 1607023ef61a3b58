"""One event applied to one hotel's state: the pure step the hotel processor runs per record.

A hotel's stays, rooms, customers and inventory live in one partition, so one step
can read all it needs (the room a guest checks into, the free count of the night a
booking takes) and decide atomically: two bookings can never both take the last room.
Nothing here does I/O; the processor reads state through `read` and writes `changes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from streams.core.kinds import System
from streams.core.limits import violations
from streams.core.models import (
    CheckinCheckoutAction,
    CheckinCheckoutEvent,
    CustomerEvent,
    HotelEvent,
    Refusal,
    RefusalReason,
    ReservationEvent,
    RoomEvent,
    record_key,
)
from streams.core.reports.shares import DayFact, RoomFact, room_facts, stay_facts
from streams.core.rules import (
    Outcome,
    Principal,
    RuleSettings,
    apply_customer,
    apply_movement,
    apply_reservation,
    apply_room,
    origin_refusal,
    published_at,
    refuse,
)
from streams.core.state import (
    AvailabilityState,
    CustomerState,
    InventoryDelta,
    ReportsSeeded,
    ReservationState,
    RoomState,
    WaitingEvent,
    WaitingRoom,
    apply_delta,
    table_key,
)

STAY, ROOM, CUSTOMER, AVAILABILITY = "stay", "room", "customer", "availability"
WAITING = "waiting"
REPORTS = "reports"
MODELS: dict[str, type[Any]] = {
    STAY: ReservationState, ROOM: RoomState, CUSTOMER: CustomerState,
    AVAILABILITY: AvailabilityState, WAITING: WaitingRoom, REPORTS: ReportsSeeded,
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
    facts: list[DayFact | RoomFact] = field(default_factory=list)
    """What the stays and rooms it changed now contribute to the reports' business days."""


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
        room: RoomState | None = view.get(ROOM, key)
        if not step.duplicate and room is not None:
            _release(view, step, lambda kept: kept.room_id == room.room_id
                     or kept.room_type == room.room_type, room.hotel_id, rules)
    elif isinstance(event, CustomerEvent):
        step.duplicate = _customer(view, step, event, rules)
    _expire(view, step, event, rules)
    return step


FACTS_VERSION = 1
"""Meaning of the report facts (`streams.core.reports.shares`); a change that alters what a
stay or room contributes bumps it, and every partition sends its facts once more."""
SEEDED: StateKey = (REPORTS, b"facts")


def seed_facts(states: Mapping[StateKey, Any]) -> tuple[list[DayFact | RoomFact], dict[
        StateKey, Any]]:
    """What every stay and room of a partition contributes to the reports, for a partition
    whose facts were never sent (a hub upgraded to reports) or mean something else now; and
    the state that says they are sent. Nothing when they were (facts are absolute, so
    sending them again would change nothing but cost)."""
    seeded = states.get(SEEDED)
    if seeded is not None and seeded.facts_version >= FACTS_VERSION:
        return [], {}
    facts: list[DayFact | RoomFact] = []
    for tag, key in [key for key in states if key[0] in (STAY, ROOM)]:
        state = states.get((tag, key))
        if isinstance(state, ReservationState):
            facts += stay_facts(None, state)
        elif isinstance(state, RoomState):
            facts += room_facts(None, state)
    return facts, {SEEDED: ReportsSeeded(facts_version=FACTS_VERSION)}


def refuse_unverified(event: HotelEvent, principal: Principal) -> Step | None:
    """A step that only refuses `event` when its verified producer is not the system it
    names (`rules.origin`); None when it is, and `apply_event` decides it.

    Checked before any rule, so a forged event never touches state, not even the
    waiting room's event time."""
    refusal = origin_refusal(event, principal)
    return None if refusal is None else Step(event, refusals=[refusal])


def _settle(view: _View, step: Step, tag: str, key: bytes, outcome: Outcome[Any]) -> bool:
    """Take an outcome into the view and the step; True when it was a resend."""
    step.refusals += outcome.refusals
    if outcome.state is not None:
        before = view.get(tag, key)
        if tag == STAY:
            step.facts += stay_facts(before, outcome.state)
        elif tag == ROOM:
            step.facts += room_facts(before, outcome.state)
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
        if (problem is not None and problem.reason_code is RefusalReason.UNKNOWN_ENTITY
                and _can_wait(view, event, rules)):
            room_type = outcome.state.room_type
            step.duplicate = not _wait(view, event, WaitingEvent(
                event=event, waits_for=f"room type {room_type}", room_type=room_type))
            return
        if problem is not None:
            step.refusals.append(problem)
            return
    _settle(view, step, STAY, key, outcome)
    for movement in outcome.released:
        _movement(view, step, movement, rules)


def _customer(view: _View, step: Step, event: CustomerEvent, rules: RuleSettings) -> bool:
    key = record_key(event)
    current: CustomerState | None = view.get(CUSTOMER, key)
    if (current is None and event.updated_by_system != System.HOTEL_MEMBER.value
            and _can_wait(view, event, rules)):
        # hotel-member creates customers; its event may be on its way on another partition.
        return not _wait(view, event, WaitingEvent(
            event=event, waits_for=f"customer {event.data.customer_id}",
            customer_id=event.data.customer_id))
    duplicate = _settle(view, step, CUSTOMER, key, apply_customer(current, event, rules))
    if current is None and view.get(CUSTOMER, key) is not None:
        _release(view, step, lambda kept: kept.customer_id == event.data.customer_id,
                 event.hotel_id, rules)
    return duplicate


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
    stay: ReservationState | None = view.get(STAY, key)
    ahead = _waiting_movement(view, event)
    if ahead is not None:  # never overtakes a movement of its stay that waits
        return not _wait(view, event, ahead.model_copy(update={"event": event}))
    if (room is None and room_id is not None and _can_wait(view, event, rules)
            and event.action is CheckinCheckoutAction.CHECKED_IN
            and stay is not None and stay.known and not stay.pending_movements):
        return not _wait(view, event, WaitingEvent(event=event, waits_for=f"room {room_id}",
                                                   room_id=room_id))
    outcome = apply_movement(stay, room, event, rules)
    duplicate = _settle(view, step, STAY, key, outcome)
    for room_event in outcome.room_events:
        assert room_key is not None
        changed = apply_room(room, room_event)
        if changed.state is not None:
            _settle(view, step, ROOM, room_key, changed)
            if changed.state.status_at == room_event.occurred_at:
                step.room_events.append(room_event)  # announced only when it is the status
    return duplicate


# --- events that arrived before the room or room type they need -------------------------


WAITING_ROOM_SIZE = 100
"""Events one hotel keeps waiting at most; beyond that they are refused at once, so the
waiting room stays one small record however a backlog is read."""


def _can_wait(view: _View, event: HotelEvent, rules: RuleSettings) -> bool:
    if rules.order_grace_s <= 0:
        return False
    waiting: WaitingRoom | None = view.get(WAITING, event.hotel_id.encode())
    return waiting is None or len(waiting.events) < WAITING_ROOM_SIZE


def _wait(view: _View, event: HotelEvent, waiting: WaitingEvent) -> bool:
    """Keep `event` until the room, room type or customer it needs arrives; False when it
    is waiting already."""
    key = event.hotel_id.encode()
    room: WaitingRoom = view.get(WAITING, key) or WaitingRoom(hotel_id=event.hotel_id)
    if any(kept.event.event_id == event.event_id for kept in room.events):
        return False
    moment = published_at(event)
    view.put(WAITING, key, room.model_copy(update={
        "events": [*room.events, waiting],
        "watermark": max(room.watermark or moment, moment),
    }))
    return True


def _waiting_movement(view: _View, event: CheckinCheckoutEvent) -> WaitingEvent | None:
    """A movement of the same stay that waits for its room, if any."""
    waiting: WaitingRoom | None = view.get(WAITING, event.hotel_id.encode())
    for kept in waiting.events if waiting is not None else ():
        if (isinstance(kept.event, CheckinCheckoutEvent)
                and kept.event.data.reservation_id == event.data.reservation_id):
            return kept
    return None


def _release(view: _View, step: Step, ready_now: Callable[[WaitingEvent], bool],
             hotel_id: str, rules: RuleSettings) -> None:
    """What an event waited for has arrived: it goes on."""
    key = hotel_id.encode()
    waiting: WaitingRoom | None = view.get(WAITING, key)
    if waiting is None:
        return
    ready = [kept for kept in waiting.events if ready_now(kept)]
    if not ready:
        return
    view.put(WAITING, key, waiting.model_copy(update={
        "events": [kept for kept in waiting.events if kept not in ready]}))
    for kept in ready:
        if isinstance(kept.event, ReservationEvent):
            _reservation(view, step, kept.event, rules)
        elif isinstance(kept.event, CheckinCheckoutEvent):
            _movement(view, step, kept.event, rules)
        else:
            _customer(view, step, kept.event, rules)


def _expire(view: _View, step: Step, event: HotelEvent, rules: RuleSettings) -> None:
    """Refuse what has waited longer than the grace, in the hotel's own event time."""
    key = event.hotel_id.encode()
    waiting: WaitingRoom | None = view.get(WAITING, key)
    if waiting is None or not waiting.events:
        return
    moment = published_at(event)
    watermark = max(waiting.watermark or moment, moment)
    grace = timedelta(seconds=rules.order_grace_s)
    expired = [kept for kept in waiting.events
               if published_at(kept.event) + grace < watermark]
    for kept in expired:
        step.refusals.append(refuse(
            kept.event, RefusalReason.UNKNOWN_ENTITY,
            f"{kept.waits_for} is not known at hotel {event.hotel_id}: hotel-pms sends it "
            f"before it is booked or checked into (waited {rules.order_grace_s:g} s of the "
            "hotel's events for it)"))
    if expired:  # the watermark is written with a change only: never a write per event
        view.put(WAITING, key, waiting.model_copy(update={
            "events": [kept for kept in waiting.events if kept not in expired],
            "watermark": watermark}))
