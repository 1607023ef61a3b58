"""Rooms: hotel-pms's changes and the hub's own status after a check-in or check-out,
ordered by when the status changed; the nights out of order and the rooms in the house."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from streams.core.kinds import System, event_type
from streams.core.models import HotelEvent, RoomEvent, RoomStatus
from streams.core.rules.outcome import Outcome, already_applied, versions_with
from streams.core.state import InventoryDelta, RoomState, remember

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
        done: Outcome[RoomState] | None = already_applied(current, event, data.version)
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
                                    event_type(event.type, event.action), event.occurred_at,
                                    event.updated_by_system),
            }))
        return Outcome()
    applied = remember(current.applied if current else _NO_HISTORY.applied, event.event_id,
                       event_type(event.type, event.action), event.occurred_at,
                       event.updated_by_system)
    if current is None:
        state = RoomState(
            hotel_id=event.hotel_id, room_id=data.room_id, room_number=data.room_number,
            room_type=data.room_type, status=data.status,
            availability_date=data.availability_date, base_price=data.base_price,
            currency=data.currency, maintenance_notes=data.maintenance_notes,
            current_reservation_id=data.reservation_id, version=data.version,
            versions=versions_with(None, event, data.version), status_at=event.occurred_at,
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
            "versions": versions_with(current, event, data.version), "applied": applied,
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
