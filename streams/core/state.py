"""What the hub's tables hold: the current picture of rooms, customers, stays and availability.

Values are pydantic models stored in Faust tables as JSON, so a table changelog
is readable by any Kafka tool and a restore rebuilds exactly these models.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streams.core.models import (
    CheckinCheckoutEvent,
    CustomerEvent,
    PaymentStatus,
    ReservationEvent,
    ReservationOrigin,
    ReservationStatus,
    RoomStatus,
)

RECENT_EVENT_IDS = 8
"""Event ids remembered per entity, so that a resent event is passed over silently.

Whether an event changes anything is decided by each system's version high-water
mark (`Versioned.versions`), which is exact however long ago an event was first
applied; these ids only tell a resend (silent) from a stale update (refused)."""


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        """The form stored in a table (and its changelog)."""
        return self.model_dump(mode="json")


class Applied(_State):
    """The last events applied to an entity, newest last."""

    recent_event_ids: list[str] = Field(default_factory=list)
    last_event_id: str | None = None
    last_event_type: str | None = None
    updated_at: datetime | None = None
    """When the last applied change happened (its `occurred_at`)."""
    updated_by: str | None = None
    """Who made it: an offline change older than it names this system in its conflict."""

    def seen(self, event_id: object) -> bool:
        return str(event_id) in self.recent_event_ids


def remember(applied: Applied, event_id: object, event_type: str, at: datetime,
             by: str | None = None) -> Applied:
    ids = [*applied.recent_event_ids, str(event_id)][-RECENT_EVENT_IDS:]
    return Applied(
        recent_event_ids=ids, last_event_id=str(event_id), last_event_type=event_type,
        updated_at=at, updated_by=by,
    )


class Versioned(_State):
    """Each system's newest applied version: one system's counter never locks out another's."""

    versions: dict[str, int] = Field(default_factory=dict)

    def version_of(self, system: str) -> int | None:
        return self.versions.get(system)


class RoomState(Versioned):
    hotel_id: str
    room_id: str
    room_number: str
    room_type: str
    status: RoomStatus
    availability_date: date
    base_price: Decimal | None = None
    currency: str | None = None
    maintenance_notes: str | None = None
    current_reservation_id: str | None = None
    version: int
    status_at: datetime | None = None
    """When the status last changed (PMS or check-in/out): an older change never overrides it."""
    out_of_order_dates: list[date] = Field(default_factory=list)
    applied: Applied = Field(default_factory=Applied)


class FieldSource(_State):
    """Which system last changed a customer field, with which event and version."""

    system: str
    event_id: str
    version: int
    at: datetime


class CustomerState(Versioned):
    hotel_id: str
    customer_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    rank_id: str | None = None
    total_points: int | None = None
    updatable_by_pms: bool = False
    version: int
    field_sources: dict[str, FieldSource] = Field(default_factory=dict)
    applied: Applied = Field(default_factory=Applied)


class StatusSource(StrEnum):
    """Which topic last moved the status: stay movements may run ahead of reservations."""

    RESERVATION = "reservation"
    MOVEMENT = "movement"


class ReservationState(Versioned):
    """A stay. `status` is None while only movements that arrived first are known."""

    hotel_id: str
    reservation_id: str
    status: ReservationStatus | None = None
    status_source: StatusSource | None = None
    customer_id: str | None = None
    room_type: str | None = None
    room_number: str | None = None
    room_id: str | None = None
    checkin_date: date | None = None
    checkout_date: date | None = None
    total_amount: Decimal | None = None
    currency: str | None = None
    origin: ReservationOrigin | None = None
    version: int = 0
    actual_checkin_time: datetime | None = None
    actual_checkout_time: datetime | None = None
    additional_charges: Decimal | None = None
    payment_status: PaymentStatus | None = None
    departure_date: date | None = None
    """The hotel-local day the guest actually left: nights from it on were not stayed."""
    finished_at: datetime | None = None
    """When the event that ended the stay (check-out, cancellation, no-show) was published
    (its `synced_at`): booking news published before it may still arrive from another
    topic and is taken; anything published later is refused."""
    movement_ids: dict[str, str] = Field(default_factory=dict)
    """Event id of each movement applied (checked_in, checked_out, no_show): a resent
    movement is recognised however long ago it was first applied."""
    pending_movements: list[CheckinCheckoutEvent] = Field(default_factory=list)
    applied: Applied = Field(default_factory=Applied)

    @property
    def known(self) -> bool:
        return self.status is not None


class WaitingEvent(_State):
    """An event that needs a room type, room or customer the hub has not seen yet."""

    event: ReservationEvent | CheckinCheckoutEvent | CustomerEvent
    waits_for: str
    """What it needs, for people: "room type DBL", "room RM-201", "customer C1"."""
    room_type: str | None = None
    room_id: str | None = None
    customer_id: str | None = None


class WaitingRoom(_State):
    """One hotel's events that arrived before what they need: events of different
    partitions have no order, so a booking read before its room is not refused at once.

    An event still waiting when an event of the hotel published `order_grace_s` after it
    is applied is refused. `watermark` is the latest publishing time written with the
    last change (not on every event: after a restart expiry may come a little later).
    """

    hotel_id: str
    watermark: datetime | None = None
    events: list[WaitingEvent] = Field(default_factory=list)


class ReportsSeeded(_State):
    """A partition's stays and rooms have sent their report facts (`facts_version` of them):
    a hub upgraded to reports, or whose facts changed meaning, sends them once more."""

    facts_version: int


class NightCounts(_State):
    sold: int = 0
    out_of_order: int = 0


class AvailabilityState(_State):
    """One room type at one hotel: rooms in the house, and per night what is sold or out."""

    hotel_id: str
    room_type: str
    in_house: int = 0
    nights: dict[date, NightCounts] = Field(default_factory=dict)

    def free(self, night: date) -> int:
        counts = self.nights.get(night, NightCounts())
        return self.in_house - counts.sold - counts.out_of_order

    def night(self, night: date) -> dict[str, Any]:
        counts = self.nights.get(night, NightCounts())
        return {
            "date": night.isoformat(),
            "in_house": self.in_house,
            "sold": counts.sold,
            "out_of_order": counts.out_of_order,
            "free": self.in_house - counts.sold - counts.out_of_order,
        }


class InventoryDelta(_State):
    """A change to one room type's availability, caused by one event.

    Stays, rooms and availability of a hotel are decided in one place (the hotel's
    partition, `streams.runners.hotel_processor`), so a delta is applied in the same
    transaction as its cause and never needs deduplicating.
    """

    hotel_id: str
    room_type: str
    in_house: int = 0
    sold: dict[date, int] = Field(default_factory=dict)
    out_of_order: dict[date, int] = Field(default_factory=dict)
    cause_event_id: str

    @property
    def empty(self) -> bool:
        return not (self.in_house or any(self.sold.values()) or any(self.out_of_order.values()))


def apply_delta(state: AvailabilityState | None, delta: InventoryDelta) -> AvailabilityState:
    current = state or AvailabilityState(hotel_id=delta.hotel_id, room_type=delta.room_type)
    nights = dict(current.nights)
    for night in {*delta.sold, *delta.out_of_order}:
        counts = nights.get(night, NightCounts())
        nights[night] = NightCounts(
            sold=counts.sold + delta.sold.get(night, 0),
            out_of_order=counts.out_of_order + delta.out_of_order.get(night, 0),
        )
    return current.model_copy(update={"in_house": current.in_house + delta.in_house,
                                      "nights": nights})


def table_key(hotel_id: str, entity_id: str) -> str:
    """Every table is per hotel: `hotel_id:entity_id`, like the record keys."""
    return f"{hotel_id}:{entity_id}"
