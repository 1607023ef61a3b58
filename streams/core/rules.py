"""The design's rules, made precise, as pure functions of (current state, event).

Agents read a table, call one of these and write what comes back, so every rule
is tested without Kafka and a replay of the same events always decides the same.
Nothing here reads a clock: derived events and refusals take their ids and times
from the event that caused them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from streams.core.kinds import POLICIES, EventKind, System
from streams.core.limits import Limits
from streams.core.models import (
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
from streams.core.state import (
    CustomerState,
    FieldSource,
    InventoryDelta,
    ReservationState,
    RoomState,
    StatusSource,
    Versioned,
    remember,
)
from streams.wire.cloudevents import event_type

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
    overbooking: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Rooms a hotel may sell beyond what it has, per hotel and room type: a count ("2")
    or a share of the rooms of that type ("5%"); "*" stands for any hotel or type."""
    limits: Limits = field(default_factory=Limits)
    order_grace_s: float = 120.0
    """How long, in the hotel's own event time, a booking or check-in waits for a room type
    or room the hub has not seen before it is refused: events of different partitions
    have no order, so a backlog can deliver a booking before its room. 0 refuses at once."""

    def allowance(self, hotel_id: str, room_type: str, in_house: int) -> int:
        """How far below zero `room_type`'s free count may go at `hotel_id`."""
        hotel, anywhere = self.overbooking.get(hotel_id, {}), self.overbooking.get("*", {})
        for raw in (hotel.get(room_type), hotel.get("*"), anywhere.get(room_type),
                    anywhere.get("*")):
            if raw is not None:
                return parse_allowance(raw, in_house)
        return 0


def parse_allowance(raw: str, in_house: int) -> int:
    """"2" -> 2 rooms; "5%" -> 5 % of the rooms in the house, rounded down."""
    text = raw.strip()
    try:
        if text.endswith("%"):
            return int(Decimal(text[:-1]) * in_house / 100)
        return int(text)
    except (ArithmeticError, ValueError):
        raise ValueError(f"overbooking allowance {raw!r} is neither a count nor a percent"
                         ) from None


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
        refused_at=event.synced_at or event.occurred_at,
    )


def _refused(event: HotelEvent, code: RefusalReason, reason: str, current: object) -> Outcome[S]:
    return Outcome(refusals=[refuse(event, code, reason, current)])


def _already_applied(current: Versioned | None, event: HotelEvent, version: int
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
    system = event.updated_by_system
    seen = current.version_of(system)
    if seen is not None and version <= seen:
        return _refused(event, RefusalReason.STALE_VERSION,
                        f"version {version} from {system} is not newer than version {seen} "
                        f"already applied from {system}; nothing changed (an event sent "
                        "again long after it was applied is answered this way too)", current)
    return None


def _versions(current: Versioned | None, event: HotelEvent, version: int) -> dict[str, int]:
    return {**(current.versions if current else {}), event.updated_by_system: version}


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
    done: Outcome[ReservationState] | None = _already_applied(current, event, data.version)
    if done is not None:
        return done
    known = current is not None and current.known
    previous = current.status if current is not None and known else None
    status, source = data.status, StatusSource.RESERVATION
    if status in GUEST_MOVES and status is not previous:
        return _refused(event, RefusalReason.ILLEGAL_TRANSITION,
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
                return _refused(event, RefusalReason.ILLEGAL_TRANSITION,
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
            return _refused(event, RefusalReason.ILLEGAL_TRANSITION,
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
        "version": data.version, "versions": _versions(current, event, data.version),
        "finished_at": (base.finished_at if previous in FINISHED else
                        published_at(event) if status is ReservationStatus.CANCELLED else None),
        "pending_movements": [],
        "applied": remember(base.applied, event.event_id, event_type(event.type, event.action),
                            event.occurred_at),
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
        return _refused(event, RefusalReason.OWNER_ONLY,
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
        return _refused(event, RefusalReason.ILLEGAL_TRANSITION,
                        f"cannot record {action} for a {status} stay", current)
    if target is ReservationStatus.CHECKED_IN and room is None:
        return _refused(event, RefusalReason.UNKNOWN_ENTITY,
                        f"room {data.room_id} is not known at hotel {event.hotel_id}; "
                        "hotel-pms sends the room before guests check into it", current)

    update: dict[str, object] = {
        "status": target, "status_source": StatusSource.MOVEMENT,
        "payment_status": data.payment_status,
        "movement_ids": {**current.movement_ids, action: str(event.event_id)},
        "applied": remember(current.applied, event.event_id, event_type(event.type, action),
                            event.occurred_at),
    }
    if target is ReservationStatus.CHECKED_IN:
        update |= {"actual_checkin_time": data.actual_checkin_time,
                   "room_number": data.room_number, "room_id": data.room_id}
    if target is ReservationStatus.CHECKED_OUT:
        assert data.actual_checkout_time is not None
        update |= {"actual_checkout_time": data.actual_checkout_time,
                   "additional_charges": data.additional_charges,
                   "departure_date": data.actual_checkout_time.astimezone(
                       ZoneInfo(rules.timezone)).date(),
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
            "availability_date": moment.astimezone(ZoneInfo(rules.timezone)).date(),
            "reservation_id": stay.reservation_id if checked_in else None,
            "version": 0,
        },
    })


# --- rooms ---------------------------------------------------------------------------

_OUT = frozenset({RoomStatus.OUT_OF_ORDER, RoomStatus.OUT_OF_SERVICE})
_VACANT = frozenset({RoomStatus.VACANT_CLEAN, RoomStatus.VACANT_DIRTY, RoomStatus.INSPECTED})
_OCCUPIED = frozenset({RoomStatus.OCCUPIED_CLEAN, RoomStatus.OCCUPIED_DIRTY})


def is_derived(event: HotelEvent) -> bool:
    """Events the hub itself derived (room status after a check-in or check-out)."""
    return event.updated_by_system == System.HOTEL_HUB.value


def apply_room(current: RoomState | None, event: RoomEvent) -> Outcome[RoomState]:
    """Room changes from hotel-pms and the hub's own status after check-in/out.

    hotel-pms's versions order its own changes. The status is ordered by when it
    changed, whoever changed it: a status older than the one the room has (a
    housekeeping update sent before a check-in but delivered after it, or a derived
    status after the PMS reported a later one) never overrides it.
    """
    data, derived = event.data, is_derived(event)
    if derived:
        if current is not None and current.applied.seen(event.event_id):
            return Outcome(duplicate=True)
    else:
        done: Outcome[RoomState] | None = _already_applied(current, event, data.version)
        if done is not None:
            return done
    newer = (current is None or current.status_at is None
             or event.occurred_at >= current.status_at)
    if derived and current is None:
        return Outcome()  # no phantom room
    if derived and not newer:
        assert current is not None
        # The PMS already reported a later status; only who occupies the room, which
        # its status does not say, is taken from the check-in.
        if (data.reservation_id is not None and current.current_reservation_id is None
                and current.status in _OCCUPIED):
            return Outcome(state=current.model_copy(update={
                "current_reservation_id": data.reservation_id,
                "applied": remember(current.applied, event.event_id,
                                    event_type(event.type, event.action), event.occurred_at),
            }))
        return Outcome()
    applied = remember(current.applied if current else _NO_HISTORY.applied, event.event_id,
                       event_type(event.type, event.action), event.occurred_at)
    if current is None:
        state = RoomState(
            hotel_id=event.hotel_id, room_id=data.room_id, room_number=data.room_number,
            room_type=data.room_type, status=data.status,
            availability_date=data.availability_date, base_price=data.base_price,
            currency=data.currency, maintenance_notes=data.maintenance_notes,
            current_reservation_id=data.reservation_id, version=data.version,
            versions=_versions(None, event, data.version), status_at=event.occurred_at,
            applied=applied,
        )
    elif derived:
        state = current.model_copy(update={
            "status": data.status, "availability_date": data.availability_date,
            "current_reservation_id": data.reservation_id, "status_at": event.occurred_at,
            "applied": applied,
        })
    else:
        update: dict[str, object] = {
            "room_number": data.room_number, "room_type": data.room_type,
            "base_price": data.base_price if data.base_price is not None else current.base_price,
            "currency": data.currency or current.currency,
            "maintenance_notes": data.maintenance_notes, "version": data.version,
            "versions": _versions(current, event, data.version), "applied": applied,
        }
        if newer:
            reservation = data.reservation_id or (
                None if data.status in _VACANT | _OUT else current.current_reservation_id)
            update |= {"status": data.status, "availability_date": data.availability_date,
                       "current_reservation_id": reservation, "status_at": event.occurred_at}
        state = current.model_copy(update=update)
    state, deltas = _out_of_order(current, state, None if derived else event,
                                  str(event.event_id))
    return Outcome(state=state, deltas=deltas)


_NO_HISTORY = RoomState(hotel_id="", room_id="", room_number="", room_type="",
                        status=RoomStatus.INSPECTED, availability_date=date.min, version=0)


def _out_of_order(
    before: RoomState | None, after: RoomState, report: RoomEvent | None, cause: str
) -> tuple[RoomState, list[InventoryDelta]]:
    """Nights out of order, as hotel-pms reports each (whatever order its reports arrive
    in), and the availability deltas of the change; the hub's own events report none."""
    dates = set(before.out_of_order_dates) if before else set()
    if report is not None and report.data.status in _OUT:
        dates.add(report.data.availability_date)
    elif report is not None:
        dates.discard(report.data.availability_date)
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
    done: Outcome[CustomerState] | None = _already_applied(current, event, data.version)
    if done is not None:
        return done
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
        "version": data.version, "versions": _versions(current, event, data.version),
        "field_sources": {**base.field_sources, **dict.fromkeys(sorted(changing), source)},
        "applied": remember(base.applied, event.event_id, event_type(event.type, event.action),
                            event.occurred_at),
    })
    return Outcome(state=state)
