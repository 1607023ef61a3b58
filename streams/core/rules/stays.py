"""Reservations and stay movements: the lifecycle of a stay, who may move it, and the
nights it takes from its room type."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from streams.core.kinds import POLICIES, EventKind, System, event_type
from streams.core.models import (
    CheckinCheckoutAction,
    CheckinCheckoutEvent,
    RefusalReason,
    ReservationEvent,
    ReservationStatus,
    RoomAction,
    RoomEvent,
    RoomStatus,
)
from streams.core.rules.config import RuleSettings
from streams.core.rules.outcome import (
    Outcome,
    already_applied,
    derived_id,
    published_at,
    refused,
    versions_with,
)
from streams.core.state import (
    InventoryDelta,
    ReservationState,
    RoomState,
    StatusSource,
    remember,
)

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
GUEST_MOVES = frozenset({ReservationStatus.CHECKED_IN, ReservationStatus.CHECKED_OUT,
                         ReservationStatus.NO_SHOW})
"""Statuses only the front desk sets, with a check-in/out event from hotel-pms."""
FINISHED = frozenset({ReservationStatus.CHECKED_OUT, ReservationStatus.CANCELLED,
                      ReservationStatus.NO_SHOW})
HISTORY_FIELDS = ("checkin_date", "checkout_date", "room_type", "total_amount", "currency")
"""What a finished stay keeps as it was: a late folio charge is a check-out charge."""

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


def held_nights(state: ReservationState | None) -> dict[tuple[str, date], int]:
    """The nights a stay takes from its room type; after an early departure only those stayed."""
    if (state is None or state.status not in _HOLDS_INVENTORY or state.room_type is None
            or state.checkin_date is None or state.checkout_date is None):
        return {}
    end = state.checkout_date
    if state.status is ReservationStatus.CHECKED_OUT and state.departure_date is not None:
        end = max(min(end, state.departure_date), state.checkin_date)
    nights = (end - state.checkin_date).days
    return {(state.room_type, state.checkin_date + timedelta(days=n)): 1 for n in range(nights)}


def sold_deltas(before: ReservationState | None, after: ReservationState,
                cause: object) -> list[InventoryDelta]:
    old, new = held_nights(before), held_nights(after)
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
    """A booking or booking change from any system; the front desk alone moves guests."""
    data = event.data
    done: Outcome[ReservationState] | None = already_applied(current, event, data.version)
    if done is not None:
        return done
    known = current is not None and current.known
    previous = current.status if current is not None and known else None
    status, source = data.status, StatusSource.RESERVATION
    if status in GUEST_MOVES and status is not previous:
        return refused(event, RefusalReason.ILLEGAL_TRANSITION,
                        f"only the front desk moves guests: {status} comes from hotel-pms as a "
                        f"check-in/out event, not as a reservation {event.action}", current)
    if current is not None and previous in FINISHED:
        if current.finished_at is not None and published_at(event) < current.finished_at:
            # Made before the stay ended, delivered after (the end came on another
            # topic): the booking's own changes count, the stay stays finished.
            status, source = previous, current.status_source or source
        else:
            changed = [name for name in HISTORY_FIELDS
                       if getattr(data, name) != getattr(current, name)]
            if changed or status is not previous:
                what = ", ".join(changed) if changed else f"status {status}"
                return refused(event, RefusalReason.ILLEGAL_TRANSITION,
                                f"a {previous} stay is history: its {what} can no longer "
                                "change",
                                current)
    elif (current is not None and status is previous
          and current.status_source is StatusSource.MOVEMENT):
        source = StatusSource.MOVEMENT  # an echo of what the front desk recorded
    elif previous is not None and current is not None and status not in LIFECYCLE[previous]:
        if current.status_source is StatusSource.MOVEMENT and _RANK[status] < _RANK[previous]:
            # The front desk moved the stay on before this older news arrived: keep the
            # status the movement set, take the booking's other changes.
            status, source = previous, StatusSource.MOVEMENT
        else:
            return refused(event, RefusalReason.ILLEGAL_TRANSITION,
                            f"a {previous} stay cannot become {status}", current)
    base = current or ReservationState(hotel_id=event.hotel_id,
                                       reservation_id=data.reservation_id)
    state = base.model_copy(update={
        "status": status, "status_source": source, "customer_id": data.customer_id,
        "room_type": data.room_type,
        # The room the front desk gave the guest outranks the one the booking asked for.
        "room_number": (base.room_number if base.room_id is not None
                        else data.room_number or base.room_number),
        "checkin_date": data.checkin_date, "checkout_date": data.checkout_date,
        "total_amount": data.total_amount, "currency": data.currency, "origin": data.origin,
        "version": data.version, "versions": versions_with(current, event, data.version),
        "finished_at": (base.finished_at if previous in FINISHED else
                        published_at(event) if status is ReservationStatus.CANCELLED else None),
        "pending_movements": [],
        "applied": remember(base.applied, event.event_id, event_type(event.type, event.action),
                            event.occurred_at, event.updated_by_system),
    })
    return Outcome(state=state, released=list(base.pending_movements),
                   deltas=sold_deltas(current if known else None, state, event.event_id))


_MOVE_TO = {
    CheckinCheckoutAction.CHECKED_IN: ReservationStatus.CHECKED_IN,
    CheckinCheckoutAction.CHECKED_OUT: ReservationStatus.CHECKED_OUT,
    CheckinCheckoutAction.NO_SHOW: ReservationStatus.NO_SHOW,
}
_MOVE_FROM = {
    ReservationStatus.CHECKED_IN: _ARRIVABLE,
    ReservationStatus.CHECKED_OUT: frozenset({ReservationStatus.CHECKED_IN}),
    ReservationStatus.NO_SHOW: _ARRIVABLE,
}


def apply_movement(
    current: ReservationState | None, room: RoomState | None, event: CheckinCheckoutEvent,
    rules: RuleSettings,
) -> Outcome[ReservationState]:
    """A check-in, check-out or no-show; one that overtakes its booking waits for it.

    `room` is the hub's state of the room the guest moves in or out of (None when the
    hub has never seen it): a check-in to an unknown room is refused, and a check-out
    vacates the room only while this stay still occupies it.
    """
    action = str(event.action)
    if current is not None and (current.movement_ids.get(action) == str(event.event_id)
                                or current.applied.seen(event.event_id)):
        return Outcome(duplicate=True)
    if event.updated_by_system != System.HOTEL_PMS.value:
        return refused(event, RefusalReason.OWNER_ONLY,
                        f"only hotel-pms moves guests; {event.updated_by_system} may not "
                        f"record {action}", current)
    if current is None or not current.known:
        base = current or ReservationState(hotel_id=event.hotel_id,
                                           reservation_id=event.data.reservation_id)
        if any(pending.event_id == event.event_id for pending in base.pending_movements):
            return Outcome(duplicate=True)
        return Outcome(state=base.model_copy(
            update={"pending_movements": [*base.pending_movements, event]}))

    data, status, target = event.data, current.status, _MOVE_TO[event.action]
    if current.pending_movements or (status is ReservationStatus.WAITLISTED
                                     and target is not ReservationStatus.CHECKED_OUT):
        # The version that confirms the booking may still be on its way (another topic);
        # a movement never overtakes one that waits before it.
        if any(pending.event_id == event.event_id for pending in current.pending_movements):
            return Outcome(duplicate=True)
        return Outcome(state=current.model_copy(
            update={"pending_movements": [*current.pending_movements, event]}))
    if status not in _MOVE_FROM[target]:
        return refused(event, RefusalReason.ILLEGAL_TRANSITION,
                        f"cannot record {action} for a {status} stay", current)
    if target is ReservationStatus.CHECKED_IN and room is None:
        return refused(event, RefusalReason.UNKNOWN_ENTITY,
                        f"room {data.room_id} is not known at hotel {event.hotel_id}; "
                        "hotel-pms sends the room before guests check into it", current)

    update: dict[str, object] = {
        "status": target, "status_source": StatusSource.MOVEMENT,
        "payment_status": data.payment_status,
        "movement_ids": {**current.movement_ids, action: str(event.event_id)},
        "applied": remember(current.applied, event.event_id, event_type(event.type, action),
                            event.occurred_at, event.updated_by_system),
    }
    if target is ReservationStatus.CHECKED_IN:
        update |= {"actual_checkin_time": data.actual_checkin_time,
                   "room_number": data.room_number, "room_id": data.room_id}
    if target is ReservationStatus.CHECKED_OUT:
        assert data.actual_checkout_time is not None
        update |= {"actual_checkout_time": data.actual_checkout_time,
                   "additional_charges": data.additional_charges,
                   "departure_date": data.actual_checkout_time.astimezone(
                       ZoneInfo(rules.timezone_of(event.hotel_id))).date(),
                   "finished_at": published_at(event)}
    if target is ReservationStatus.NO_SHOW:
        update["finished_at"] = published_at(event)
    state = current.model_copy(update=update)
    outcome = Outcome(state=state, deltas=sold_deltas(current, state, event.event_id))
    vacates = room is not None and room.current_reservation_id in (None, state.reservation_id)
    if target is ReservationStatus.CHECKED_IN or (
            target is ReservationStatus.CHECKED_OUT and vacates):
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
            "availability_date": moment.astimezone(
                ZoneInfo(rules.timezone_of(movement.hotel_id))).date(),
            "reservation_id": stay.reservation_id if checked_in else None,
            "version": 0,
        },
    })
