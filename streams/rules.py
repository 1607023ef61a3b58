"""The design's rules, made precise, as pure functions of (current state, event).

Agents read a table, call one of these and write what comes back, so every rule
is tested without Kafka and a replay of the same events always decides the same.
Nothing here reads a clock: derived events and refusals take their ids and times
from the event that caused them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from streams.cloudevents import event_type
from streams.kinds import POLICIES, EventKind, System
from streams.models import (
    CheckinCheckoutAction,
    CheckinCheckoutEvent,
    CustomerAction,
    CustomerEvent,
    HotelEvent,
    Refusal,
    RefusalReason,
    ReservationEvent,
    ReservationStatus,
    RoomAction,
    RoomEvent,
    RoomStatus,
    entity_id,
)
from streams.state import (
    CustomerState,
    FieldSource,
    InventoryDelta,
    ReservationState,
    RoomState,
    StatusSource,
    remember,
)

S = TypeVar("S")

_DERIVED = uuid.UUID("5f0b6a1e-6d0c-4c55-9d1e-8f1b3c0a7e21")
"""Namespace of ids the hub derives from other events' ids (uuid5), stable across replays."""

CUSTOMER_FIELDS = ("name", "email", "phone", "rank_id", "total_points", "updatable_by_pms")
OWNER_ONLY_FIELDS = frozenset({"rank_id", "total_points", "updatable_by_pms"})


@dataclass(frozen=True)
class RuleSettings:
    timezone: str = "Asia/Tokyo"
    pms_customer_fields: frozenset[str] = frozenset({"email", "phone"})
    """Customer fields hotel-pms may change, where the customer allows it."""


@dataclass
class Outcome(Generic[S]):
    """What applying one event decided: the new state, and what to publish because of it."""

    state: S | None = None
    """The state to write; None leaves the table as it is."""
    duplicate: bool = False
    refusals: list[Refusal] = field(default_factory=list)
    room_events: list[RoomEvent] = field(default_factory=list)
    deltas: list[InventoryDelta] = field(default_factory=list)


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
        refused_at=event.synced_at or event.occurred_at,
    )


def _refused(event: HotelEvent, code: RefusalReason, reason: str, current: object) -> Outcome[S]:
    return Outcome(refusals=[refuse(event, code, reason, current)])


# --- reservations and stay movements -------------------------------------------------

_RANK = {
    ReservationStatus.WAITLISTED: 0,
    ReservationStatus.TENTATIVE: 0,
    ReservationStatus.CONFIRMED: 1,
    ReservationStatus.GUARANTEED: 1,
    ReservationStatus.CHECKED_IN: 2,
    ReservationStatus.CHECKED_OUT: 3,
    ReservationStatus.CANCELLED: 3,
    ReservationStatus.NO_SHOW: 3,
}
_BOOKED = frozenset({ReservationStatus.TENTATIVE, ReservationStatus.CONFIRMED,
                     ReservationStatus.GUARANTEED, ReservationStatus.WAITLISTED})
_ARRIVABLE = frozenset({ReservationStatus.TENTATIVE, ReservationStatus.CONFIRMED,
                        ReservationStatus.GUARANTEED})
_HOLDS_INVENTORY = frozenset({ReservationStatus.TENTATIVE, ReservationStatus.CONFIRMED,
                              ReservationStatus.GUARANTEED, ReservationStatus.CHECKED_IN,
                              ReservationStatus.CHECKED_OUT})

LIFECYCLE: dict[ReservationStatus | None, frozenset[ReservationStatus]] = {
    None: _BOOKED,
    ReservationStatus.TENTATIVE: _BOOKED | {ReservationStatus.CANCELLED,
                                            ReservationStatus.CHECKED_IN,
                                            ReservationStatus.NO_SHOW},
    ReservationStatus.WAITLISTED: _BOOKED | {ReservationStatus.CANCELLED},
    ReservationStatus.CONFIRMED: _BOOKED | {ReservationStatus.CANCELLED,
                                            ReservationStatus.CHECKED_IN,
                                            ReservationStatus.NO_SHOW},
    ReservationStatus.GUARANTEED: _BOOKED | {ReservationStatus.CANCELLED,
                                             ReservationStatus.CHECKED_IN,
                                             ReservationStatus.NO_SHOW},
    ReservationStatus.CHECKED_IN: frozenset({ReservationStatus.CHECKED_IN,
                                             ReservationStatus.CHECKED_OUT}),
    ReservationStatus.CHECKED_OUT: frozenset({ReservationStatus.CHECKED_OUT}),
    ReservationStatus.CANCELLED: frozenset({ReservationStatus.CANCELLED}),
    ReservationStatus.NO_SHOW: frozenset({ReservationStatus.NO_SHOW}),
}
"""Allowed status moves of a stay: booked -> checked_in -> checked_out; cancelled; no_show.
A status may repeat (an update that changes amount or dates keeps its status)."""


def _held_nights(state: ReservationState | None) -> dict[tuple[str, date], int]:
    if (state is None or state.status not in _HOLDS_INVENTORY or state.room_type is None
            or state.checkin_date is None or state.checkout_date is None):
        return {}
    nights = (state.checkout_date - state.checkin_date).days
    return {(state.room_type, state.checkin_date + timedelta(days=n)): 1 for n in range(nights)}


def _sold_deltas(before: ReservationState | None, after: ReservationState,
                 cause: object) -> list[InventoryDelta]:
    old, new = _held_nights(before), _held_nights(after)
    by_type: dict[str, dict[date, int]] = {}
    for key in {*old, *new}:
        change = new.get(key, 0) - old.get(key, 0)
        if change:
            room_type, night = key
            by_type.setdefault(room_type, {})[night] = change
    return [
        InventoryDelta(hotel_id=after.hotel_id, room_type=room_type, sold=sold,
                       cause_event_id=str(cause))
        for room_type, sold in sorted(by_type.items())
    ]


def apply_reservation(
    current: ReservationState | None, event: ReservationEvent, rules: RuleSettings
) -> Outcome[ReservationState]:
    """A reservation event from any system; versions order them, the lifecycle guards them."""
    if current is not None and current.applied.seen(event.event_id):
        return Outcome(duplicate=True)
    data = event.data
    known = current is not None and current.known
    if current is not None and known and data.version <= current.version:
        return _refused(event, RefusalReason.STALE_VERSION,
                        f"version {data.version} is not newer than version {current.version} "
                        "already applied", current)
    status = data.status
    source = StatusSource.RESERVATION
    previous = current.status if current is not None and known else None
    if previous is not None and current is not None and status not in LIFECYCLE[previous]:
        if current.status_source is StatusSource.MOVEMENT and _RANK[status] < _RANK[previous]:
            # The front desk moved the stay on before this older news arrived: keep the
            # status the movement set, take the booking's other changes.
            status, source = previous, StatusSource.MOVEMENT
        else:
            return _refused(event, RefusalReason.ILLEGAL_TRANSITION,
                            f"a {previous} stay cannot become {status}", current)
    base = current or ReservationState(hotel_id=event.hotel_id,
                                       reservation_id=data.reservation_id)
    state = base.model_copy(update={
        "status": status, "status_source": source, "customer_id": data.customer_id,
        "room_type": data.room_type, "room_number": data.room_number or base.room_number,
        "checkin_date": data.checkin_date, "checkout_date": data.checkout_date,
        "total_amount": data.total_amount, "currency": data.currency, "origin": data.origin,
        "version": data.version, "pending_movements": [],
        "applied": remember(base.applied, event.event_id, event_type(event.type, event.action),
                            event.occurred_at),
    })
    outcome = Outcome(state=state, deltas=_sold_deltas(current if known else None, state,
                                                       event.event_id))
    for movement in base.pending_movements:
        step = apply_movement(outcome.state, movement, rules)
        outcome.refusals += step.refusals
        outcome.room_events += step.room_events
        outcome.deltas += step.deltas
        if step.state is not None:
            outcome.state = step.state
    return outcome


def apply_movement(
    current: ReservationState | None, event: CheckinCheckoutEvent, rules: RuleSettings
) -> Outcome[ReservationState]:
    """A check-in, check-out or no-show; one that overtakes its reservation waits for it."""
    if current is not None and current.applied.seen(event.event_id):
        return Outcome(duplicate=True)
    if current is None or not current.known:
        base = current or ReservationState(hotel_id=event.hotel_id,
                                           reservation_id=event.data.reservation_id)
        if any(pending.event_id == event.event_id for pending in base.pending_movements):
            return Outcome(duplicate=True)
        return Outcome(state=base.model_copy(
            update={"pending_movements": [*base.pending_movements, event]}))

    data, status = event.data, current.status
    assert status is not None
    target = {
        CheckinCheckoutAction.CHECKED_IN: ReservationStatus.CHECKED_IN,
        CheckinCheckoutAction.CHECKED_OUT: ReservationStatus.CHECKED_OUT,
        CheckinCheckoutAction.NO_SHOW: ReservationStatus.NO_SHOW,
    }[event.action]
    allowed = {
        ReservationStatus.CHECKED_IN: _ARRIVABLE,
        ReservationStatus.CHECKED_OUT: frozenset({ReservationStatus.CHECKED_IN}),
        ReservationStatus.NO_SHOW: _ARRIVABLE,
    }[target]
    # A reservation event may already have said what this movement records: fill in
    # the movement's details rather than calling the move impossible.
    caught_up = status is target and current.status_source is StatusSource.RESERVATION
    if status not in allowed and not caught_up:
        return _refused(event, RefusalReason.ILLEGAL_TRANSITION,
                        f"cannot record {event.action} for a {status} stay", current)

    update: dict[str, object] = {
        "status": target, "status_source": StatusSource.MOVEMENT,
        "payment_status": data.payment_status,
        "applied": remember(current.applied, event.event_id,
                            event_type(event.type, event.action), event.occurred_at),
    }
    if target is ReservationStatus.CHECKED_IN:
        update |= {"actual_checkin_time": data.actual_checkin_time,
                   "room_number": data.room_number, "room_id": data.room_id}
    if target is ReservationStatus.CHECKED_OUT:
        update |= {"actual_checkout_time": data.actual_checkout_time,
                   "additional_charges": data.additional_charges}
    state = current.model_copy(update=update)
    outcome = Outcome(state=state, deltas=_sold_deltas(current, state, event.event_id))
    if target is not ReservationStatus.NO_SHOW:
        outcome.room_events.append(_room_status_from(event, state, rules))
    return outcome


def _room_status_from(
    movement: CheckinCheckoutEvent, stay: ReservationState, rules: RuleSettings
) -> RoomEvent:
    """The room's new status after a check-in (occupied) or check-out (vacant, dirty)."""
    checked_in = movement.action is CheckinCheckoutAction.CHECKED_IN
    moment = movement.data.actual_checkin_time if checked_in else (
        movement.data.actual_checkout_time)
    assert moment is not None and movement.data.room_id is not None
    policy = POLICIES[EventKind.ROOM]
    return RoomEvent.model_validate({
        "type": EventKind.ROOM, "action": RoomAction.STATUS_CHANGED,
        "event_id": derived_id(movement.event_id, "room-status"),
        "priority": policy.priority, "sync_mode": policy.sync_mode,
        "delivery_guarantee": policy.delivery_guarantee,
        "targets": [target.value for target in policy.targets],
        "hotel_id": movement.hotel_id, "origin_system": movement.origin_system,
        "updated_by_system": System.HOTEL_HUB.value, "occurred_at": movement.occurred_at,
        "synced_at": movement.synced_at,
        "correlation_id": movement.correlation_id or stay.reservation_id,
        "causation_id": str(movement.event_id),
        "data": {
            "room_id": movement.data.room_id, "room_number": movement.data.room_number,
            "room_type": stay.room_type or "unknown",
            "status": RoomStatus.OCCUPIED_CLEAN if checked_in else RoomStatus.VACANT_DIRTY,
            "availability_date": moment.astimezone(ZoneInfo(rules.timezone)).date(),
            "reservation_id": stay.reservation_id if checked_in else None,
            "version": 0,
        },
    })


# --- rooms ---------------------------------------------------------------------------

_OUT = frozenset({RoomStatus.OUT_OF_ORDER, RoomStatus.OUT_OF_SERVICE})
_VACANT = frozenset({RoomStatus.VACANT_CLEAN, RoomStatus.VACANT_DIRTY, RoomStatus.INSPECTED})


def is_derived(event: HotelEvent) -> bool:
    """Events the hub itself derived (room status after a check-in or check-out)."""
    return event.updated_by_system == System.HOTEL_HUB.value


def apply_room(current: RoomState | None, event: RoomEvent) -> Outcome[RoomState]:
    """Room changes from hotel-pms (versioned) and from the hub's own check-in/out (not)."""
    if current is not None and current.applied.seen(event.event_id):
        return Outcome(duplicate=True)
    data, derived = event.data, is_derived(event)
    if current is not None and not derived and data.version <= current.version:
        return _refused(event, RefusalReason.STALE_VERSION,
                        f"version {data.version} is not newer than version {current.version} "
                        "already applied", current)
    applied = remember(current.applied if current else _NO_HISTORY.applied, event.event_id,
                       event_type(event.type, event.action), event.occurred_at)
    if current is None:
        state = RoomState(
            hotel_id=event.hotel_id, room_id=data.room_id, room_number=data.room_number,
            room_type=data.room_type, status=data.status,
            availability_date=data.availability_date, base_price=data.base_price,
            currency=data.currency, maintenance_notes=data.maintenance_notes,
            current_reservation_id=data.reservation_id, version=data.version, applied=applied,
        )
    elif derived:
        state = current.model_copy(update={
            "status": data.status, "availability_date": data.availability_date,
            "current_reservation_id": data.reservation_id, "applied": applied,
        })
    else:
        reservation = data.reservation_id or (
            None if data.status in _VACANT | _OUT else current.current_reservation_id)
        state = current.model_copy(update={
            "room_number": data.room_number, "room_type": data.room_type,
            "status": data.status, "availability_date": data.availability_date,
            "base_price": data.base_price if data.base_price is not None else current.base_price,
            "currency": data.currency or current.currency,
            "maintenance_notes": data.maintenance_notes, "current_reservation_id": reservation,
            "version": data.version, "applied": applied,
        })
    state, deltas = _out_of_order(current, state, str(event.event_id))
    return Outcome(state=state, deltas=deltas)


_NO_HISTORY = RoomState(hotel_id="", room_id="", room_number="", room_type="",
                        status=RoomStatus.INSPECTED, availability_date=date.min, version=0)


def _out_of_order(
    before: RoomState | None, after: RoomState, cause: str
) -> tuple[RoomState, list[InventoryDelta]]:
    dates = set(before.out_of_order_dates) if before else set()
    if after.status in _OUT:
        dates.add(after.availability_date)
    else:
        dates.discard(after.availability_date)
    after = after.model_copy(update={"out_of_order_dates": sorted(dates)})
    old_type = before.room_type if before else None
    old_dates = set(before.out_of_order_dates) if before else set()

    changes: dict[str, InventoryDelta] = {}

    def change(room_type: str, *, in_house: int = 0, ooo: Iterable[tuple[date, int]] = ()) -> None:
        delta = changes.get(room_type) or InventoryDelta(
            hotel_id=after.hotel_id, room_type=room_type, cause_event_id=cause)
        out = dict(delta.out_of_order)
        for night, step in ooo:
            out[night] = out.get(night, 0) + step
        changes[room_type] = delta.model_copy(
            update={"in_house": delta.in_house + in_house, "out_of_order": out})

    if old_type != after.room_type:
        if old_type is not None:
            change(old_type, in_house=-1, ooo=[(night, -1) for night in old_dates])
        change(after.room_type, in_house=1, ooo=[(night, 1) for night in dates])
    else:
        change(after.room_type, ooo=[(night, 1) for night in dates - old_dates]
               + [(night, -1) for night in old_dates - dates])
    return after, [delta for delta in changes.values() if not delta.empty]


# --- customers -----------------------------------------------------------------------


def apply_customer(
    current: CustomerState | None, event: CustomerEvent, rules: RuleSettings
) -> Outcome[CustomerState]:
    """hotel-member owns customers; hotel-pms may change only what the hotel allows."""
    if current is not None and current.applied.seen(event.event_id):
        return Outcome(duplicate=True)
    data, system = event.data, event.updated_by_system
    unknown_fields = sorted(set(data.updated_fields) - set(CUSTOMER_FIELDS))
    if unknown_fields:
        return _refused(event, RefusalReason.FIELD_NOT_ALLOWED,
                        f"unknown customer fields {unknown_fields}", current)
    if current is not None and data.version <= current.version:
        return _refused(event, RefusalReason.STALE_VERSION,
                        f"version {data.version} is not newer than version {current.version} "
                        "already applied", current)
    changing = set(data.updated_fields)
    if system != System.HOTEL_MEMBER.value:
        if current is None:
            return _refused(event, RefusalReason.UNKNOWN_ENTITY,
                            "hotel-member owns customers; this customer is not known yet", None)
        owner_only = sorted(changing & OWNER_ONLY_FIELDS)
        if owner_only or event.action is not CustomerAction.UPDATED:
            return _refused(event, RefusalReason.OWNER_ONLY,
                            f"only hotel-member may {event.action} "
                            f"{', '.join(owner_only) or 'customers'}", current)
        if not current.updatable_by_pms:
            return _refused(event, RefusalReason.NOT_UPDATABLE_BY_PMS,
                            "this customer does not allow changes from hotel-pms", current)
        forbidden = sorted(changing - rules.pms_customer_fields)
        if forbidden:
            return _refused(event, RefusalReason.FIELD_NOT_ALLOWED,
                            f"hotel-pms may change only {sorted(rules.pms_customer_fields)}; "
                            f"not {forbidden}", current)
    elif current is None or event.action is CustomerAction.CREATED:
        changing = {name for name in CUSTOMER_FIELDS if name in data.model_fields_set} | changing
    else:
        changing |= {CustomerAction.RANK_CHANGED: {"rank_id"},
                     CustomerAction.POINTS_CHANGED: {"total_points"}}.get(event.action, set())
    base = current or CustomerState(hotel_id=event.hotel_id, customer_id=data.customer_id,
                                    version=0)
    source = FieldSource(system=system, event_id=str(event.event_id), version=data.version,
                         at=event.occurred_at)
    state = base.model_copy(update={
        **{name: getattr(data, name) for name in changing},
        "version": data.version,
        "field_sources": {**base.field_sources, **dict.fromkeys(sorted(changing), source)},
        "applied": remember(base.applied, event.event_id, event_type(event.type, event.action),
                            event.occurred_at),
    })
    return Outcome(state=state)
