"""Pydantic models that mirror `schemas/avro/*.avsc` field for field.

The publisher validates with them and agents decode into them; a test fails
when a model and its contract drift apart.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeAlias
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from streams.core.kinds import POLICIES, DeliveryGuarantee, EventKind, Priority, SyncMode


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError('money and rates are decimals: send a string like "12000.50", not a float')
    return value


def _decimal(*, max_digits: int, decimal_places: int, ge: int | None = None) -> Any:
    return Annotated[
        Decimal,
        BeforeValidator(_no_float),
        Field(max_digits=max_digits, decimal_places=decimal_places, ge=ge),
    ]


Money: TypeAlias = _decimal(max_digits=15, decimal_places=3)  # type: ignore[valid-type]
Rate: TypeAlias = _decimal(max_digits=5, decimal_places=4, ge=0)  # type: ignore[valid-type]
Nights: TypeAlias = _decimal(max_digits=6, decimal_places=2, ge=0)  # type: ignore[valid-type]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
AVRO_LONG_MAX = 2**63 - 1
Version = Annotated[int, Field(ge=0, le=AVRO_LONG_MAX)]
"""An Avro long: a larger version is a field error here, not an OverflowError in the codec."""

KEY_SEPARATOR = ":"


def _no_key_separator(value: str) -> str:
    if KEY_SEPARATOR in value:
        raise ValueError(
            f"a hotel id may not contain {KEY_SEPARATOR!r}: record and table keys are "
            f"hotel_id{KEY_SEPARATOR}entity_id, so it would make keys ambiguous"
        )
    return value


HotelId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_no_key_separator)]
"""A property code; without ':' so `hotel_id:entity_id` keys split one way only."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


# --- enums the design leaves open -------------------------------------------------


class ReservationStatus(StrEnum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    GUARANTEED = "guaranteed"
    WAITLISTED = "waitlisted"
    CHECKED_IN = "checked_in"
    CHECKED_OUT = "checked_out"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


class ReservationOrigin(StrEnum):
    FRONT_DESK = "front_desk"
    WALK_IN = "walk_in"
    PHONE = "phone"
    EMAIL = "email"
    DIRECT_WEB = "direct_web"
    MEMBER_APP = "member_app"
    OTA = "ota"
    GDS = "gds"
    TRAVEL_AGENT = "travel_agent"
    CORPORATE = "corporate"
    GROUP = "group"


class RoomStatus(StrEnum):
    VACANT_CLEAN = "vacant_clean"
    VACANT_DIRTY = "vacant_dirty"
    INSPECTED = "inspected"
    OCCUPIED_CLEAN = "occupied_clean"
    OCCUPIED_DIRTY = "occupied_dirty"
    OUT_OF_ORDER = "out_of_order"
    OUT_OF_SERVICE = "out_of_service"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class ReportSchedule(StrEnum):
    DAILY = "daily_23_00"
    WEEKLY = "weekly_sunday_01_00"
    MONTHLY = "monthly_1st_02_00"


class ReservationAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    CHECKED_IN = "checked_in"
    CHECKED_OUT = "checked_out"
    NO_SHOW = "no_show"


class CustomerAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    RANK_CHANGED = "rank_changed"
    POINTS_CHANGED = "points_changed"


class RoomAction(StrEnum):
    STATUS_CHANGED = "status_changed"
    MAINTENANCE_UPDATED = "maintenance_updated"
    PRICE_UPDATED = "price_updated"


class CheckinCheckoutAction(StrEnum):
    CHECKED_IN = "checked_in"
    CHECKED_OUT = "checked_out"
    NO_SHOW = "no_show"


class AnalyticsAction(StrEnum):
    DAILY_REPORT = "daily_report"
    WEEKLY_REPORT = "weekly_report"
    MONTHLY_REPORT = "monthly_report"


# --- payloads ----------------------------------------------------------------------


class Reservation(_Record):
    reservation_id: Identifier
    customer_id: Identifier | None = None
    room_type: Identifier
    room_number: str | None = None
    checkin_date: date
    checkout_date: date
    total_amount: Money
    currency: Currency
    status: ReservationStatus
    origin: ReservationOrigin
    version: Version

    @model_validator(mode="after")
    def _stay_has_nights(self) -> Reservation:
        if self.checkout_date <= self.checkin_date:
            raise ValueError("checkout_date must be after checkin_date")
        return self


class Customer(_Record):
    customer_id: Identifier
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    rank_id: str | None = None
    total_points: Annotated[int, Field(ge=0)] | None = None
    updated_fields: list[str]
    updatable_by_pms: bool = False
    version: Version


class Room(_Record):
    room_id: Identifier
    room_number: Identifier
    room_type: Identifier
    status: RoomStatus
    availability_date: date
    base_price: Money | None = None
    currency: Currency | None = None
    maintenance_notes: str | None = None
    reservation_id: Identifier | None = None
    version: Version


class StayMovement(_Record):
    reservation_id: Identifier
    customer_id: Identifier | None = None
    room_number: Identifier
    room_id: Identifier | None = None
    actual_checkin_time: AwareDatetime | None = None
    actual_checkout_time: AwareDatetime | None = None
    additional_charges: Money | None = None
    currency: Currency | None = None
    payment_status: PaymentStatus


class Report(_Record):
    report_id: Identifier
    report_type: str
    schedule: ReportSchedule
    period_start: date
    period_end: date
    total_revenue: Money
    currency: Currency
    occupancy_rate: Rate
    customer_count: Annotated[int, Field(ge=0)]
    average_stay_duration: Nights
    detailed_data: str | None = None
    generated_by_system: str
    generated_at: AwareDatetime
    # Evolutions (issue 9): optional, so reports of older producers still read.
    version: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    supersedes: str | None = None
    timezone: str | None = None
    rooms_available: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    rooms_available_operational: Annotated[int, Field(le=2**31 - 1)] | None = None
    out_of_order_room_nights: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    rooms_sold: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    room_revenue: Money | None = None
    other_revenue: Money | None = None
    occupancy_rate_operational: Rate | None = None
    adr: Money | None = None
    revpar: Money | None = None
    arrivals: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    rooms_on_the_books: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


# --- events: the common envelope around each payload --------------------------------


class Envelope(_Record):
    event_id: UUID
    priority: Priority
    sync_mode: SyncMode
    delivery_guarantee: DeliveryGuarantee
    targets: list[str]
    hotel_id: HotelId
    origin_system: str
    updated_by_system: str
    occurred_at: AwareDatetime
    synced_at: AwareDatetime | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    created_offline: bool = False
    """Made while its system could not reach the hub, and sent later from its outbox."""


class ReservationEvent(Envelope):
    type: Literal[EventKind.RESERVATION]
    action: ReservationAction
    data: Reservation


class CustomerEvent(Envelope):
    type: Literal[EventKind.CUSTOMER]
    action: CustomerAction
    data: Customer


class RoomEvent(Envelope):
    type: Literal[EventKind.ROOM]
    action: RoomAction
    data: Room


class CheckinCheckoutEvent(Envelope):
    type: Literal[EventKind.CHECKIN_CHECKOUT]
    action: CheckinCheckoutAction
    data: StayMovement

    @model_validator(mode="after")
    def _movement_is_complete(self) -> CheckinCheckoutEvent:
        """A check-in or check-out moves a guest in or out of a room: say which, and when."""
        needed = {
            CheckinCheckoutAction.CHECKED_IN: ("room_id", "actual_checkin_time"),
            CheckinCheckoutAction.CHECKED_OUT: ("room_id", "actual_checkout_time"),
        }.get(self.action, ())
        missing = [name for name in needed if getattr(self.data, name) is None]
        if missing:
            raise ValueError(f"{self.action} needs data.{' and data.'.join(missing)}")
        return self


class AnalyticsEvent(Envelope):
    type: Literal[EventKind.ANALYTICS]
    action: AnalyticsAction
    data: Report


class RefusalReason(StrEnum):
    STALE_VERSION = "stale_version"
    ILLEGAL_TRANSITION = "illegal_transition"
    UNKNOWN_ENTITY = "unknown_entity"
    NOT_UPDATABLE_BY_PMS = "not_updatable_by_pms"
    FIELD_NOT_ALLOWED = "field_not_allowed"
    OWNER_ONLY = "owner_only"
    OVERBOOKED = "overbooked"
    INVALID_VALUE = "invalid_value"
    UNVERIFIED_ORIGIN = "unverified_origin"
    """The record's producer is not the system its `updated_by_system` names."""
    OFFLINE_CONFLICT = "offline_conflict"
    """Made offline before a change the hub has already applied: the newer change stands."""


class Refusal(_Record):
    """An event the hub would not apply; published for the system that sent it."""

    refusal_id: UUID
    refused_event_id: UUID
    event_type: str
    hotel_id: HotelId
    entity_id: Identifier
    origin_system: str
    updated_by_system: str
    reason_code: RefusalReason
    reason: str
    current_state: str | None = None
    created_offline: bool = False
    """The refused event was made offline: a conflict, told to the event's targets too."""
    refused_at: AwareDatetime


class DeliveryStatus(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    RETRYING = "retrying"


class DeliveryChannel(StrEnum):
    WEBHOOK = "webhook"
    WEBSOCKET = "websocket"


class DeliveryLog(_Record):
    """One delivery attempt of the gateway (the design's EventDeliveryLog)."""

    event_id: UUID
    event_type: str
    source_system: str
    target_systems: list[str]
    delivery_status: DeliveryStatus
    delivery_time: int
    retry_count: int
    error_message: str | None = None
    timestamp: AwareDatetime
    channel: DeliveryChannel
    target_system: str
    hotel_id: str
    endpoint_id: str | None = None
    http_status: int | None = None
    next_attempt_at: AwareDatetime | None = None


HotelEvent: TypeAlias = (
    ReservationEvent | CustomerEvent | RoomEvent | CheckinCheckoutEvent | AnalyticsEvent
)

EVENT_MODELS: dict[EventKind, type[HotelEvent]] = {
    EventKind.RESERVATION: ReservationEvent,
    EventKind.CUSTOMER: CustomerEvent,
    EventKind.ROOM: RoomEvent,
    EventKind.CHECKIN_CHECKOUT: CheckinCheckoutEvent,
    EventKind.ANALYTICS: AnalyticsEvent,
}


CONTRACT_MODELS: dict[str, type[BaseModel]] = {
    **{kind.value: model for kind, model in EVENT_MODELS.items()},
    "refusal": Refusal,
    "delivery_log": DeliveryLog,
}
"""The model of every contract in `schemas/avro/`, by contract name."""


def entity_id(event: HotelEvent) -> str:
    """The id of the entity an event is about, which keys its record."""
    return str(getattr(event.data, POLICIES[event.type].entity_key))


def record_key(event: HotelEvent) -> bytes:
    """Kafka key `hotel_id:entity_id`: per-entity order, no collision between properties."""
    return f"{event.hotel_id}:{entity_id(event)}".encode()
