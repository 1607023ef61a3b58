"""What one stay or one room contributes to one business day, and the facts that carry
those contributions from the hotel processor to the report tables.

A fact is absolute: "stay R contributes this to room type T on day d" (or nothing any
more). Applying a fact twice, or a stay's facts again after a redelivery, leaves the
day as it was, so the report tables are right under Faust's at-least-once delivery
without any deduplication. Days are business days: dates in the hotel's time zone
(the stay's dates, and its departure as `apply_movement` dated it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from streams.core.models import ReservationStatus
from streams.core.reports.money import ZERO, night_shares
from streams.core.state import ReservationState, RoomState

_IN_HOUSE = frozenset({ReservationStatus.CHECKED_IN, ReservationStatus.CHECKED_OUT})
_ON_THE_BOOKS = frozenset({ReservationStatus.TENTATIVE, ReservationStatus.CONFIRMED,
                           ReservationStatus.GUARANTEED})


class DayFigures(BaseModel):
    """The figures of a room type's business day that add up over stays, rooms, room types
    and days; zero fields are left out of the JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sold: int = 0
    """Room-nights sold: 1 for a night a checked-in guest stayed."""
    room_revenue: Decimal = ZERO
    other_revenue: Decimal = ZERO
    """Check-out charges, on the day of check-out."""
    arrivals: int = 0
    arrival_nights: int = 0
    """Booked nights of an arrival: its planned length of stay, known when it arrived."""
    booked: int = 0
    """A night on the books of a stay that has not arrived yet (the forecast)."""
    booked_revenue: Decimal = ZERO
    out_of_order: int = 0

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)

    def plus(self, other: DayFigures) -> DayFigures:
        """The additive figures of both (no validation: both are valid already)."""
        return DayFigures.model_construct(**{
            name: getattr(self, name) + getattr(other, name) for name in ADDITIVE})


ADDITIVE = tuple(DayFigures.model_fields)


class DayShare(DayFigures):
    """One stay's or room's part of one room type's day."""

    customer_id: str | None = None
    """The guest, for the distinct count of customers in house (a stay without one adds
    none: guests are known customers)."""
    currency: str | None = None


class DayTotals(DayFigures):
    """One room type's business day: the shares of all its sources added up, which is what
    the reports' windowed table holds (small, whatever the number of stays)."""

    customers: dict[str, int] = Field(default_factory=dict)
    """Nights sold per customer: the day's distinct guests are its keys."""
    currencies: dict[str, int] = Field(default_factory=dict)
    """Shares per currency: a report adds one currency only."""

    def changed(self, old: DayShare | None, new: DayShare | None) -> DayTotals:
        """These totals with a source's `old` share taken out and its `new` one put in."""
        values: dict[str, Any] = {name: getattr(self, name) for name in ADDITIVE}
        customers, currencies = dict(self.customers), dict(self.currencies)
        for share, sign in ((old, -1), (new, 1)):
            if share is None:
                continue
            for name in ADDITIVE:
                values[name] += sign * getattr(share, name)
            if share.sold and share.customer_id is not None:
                _bump(customers, share.customer_id, sign * share.sold)
            if share.currency is not None:
                _bump(currencies, share.currency, sign)
        return DayTotals(**values, customers=customers, currencies=currencies)


def _bump(counts: dict[str, int], key: str, by: int) -> None:
    left = counts.get(key, 0) + by
    if left:
        counts[key] = left
    else:
        counts.pop(key, None)


def fold(stored: Mapping[str, Any], kept: Mapping[str, Any], share: DayShare | None,
         offset: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A day's stored totals ({"offset", "totals"}) and the share its source put in them
    ({} for none), after the fact at `offset` gave that source `share`: both to be written,
    the totals first (`agents.reports`). Totals that already hold the fact (read again after
    a crash between the two writes) do not move again."""
    totals = DayTotals.model_validate(stored.get("totals", {}))
    applied = int(stored.get("offset", -1))
    if applied < offset:
        totals = totals.changed(DayShare.model_validate(kept) if kept else None, share)
    return ({"offset": max(applied, offset), "totals": totals.to_json()},
            share.to_json() if share is not None else {})


def summed(shares: Iterable[DayShare]) -> DayTotals:
    totals = DayTotals()
    for share in shares:
        totals = totals.changed(None, share)
    return totals


Shares = dict[tuple[str, date], DayShare]
"""(room type, business day) -> share."""


def stay_shares(stay: ReservationState | None) -> Shares:
    """The days a stay contributes to: nights sold and their revenue once the guest is in,
    the check-out charges on the day of departure, the arrival; or, before arrival, the
    nights it holds on the books."""
    if (stay is None or stay.room_type is None or stay.checkin_date is None
            or stay.checkout_date is None or stay.total_amount is None
            or stay.currency is None):
        return {}
    booked_nights = (stay.checkout_date - stay.checkin_date).days
    if booked_nights <= 0:
        return {}
    common = {"currency": stay.currency, "customer_id": stay.customer_id}
    shares: dict[date, dict[str, Any]] = {}

    def add(day: date, **parts: Any) -> None:
        shares.setdefault(day, dict(common)).update(parts)

    parts = night_shares(stay.total_amount, booked_nights, stay.currency)
    if stay.status in _ON_THE_BOOKS:
        for night in range(booked_nights):
            add(stay.checkin_date + timedelta(days=night), booked=1,
                booked_revenue=parts[night])
    elif stay.status in _IN_HOUSE:
        end = stay.checkout_date
        if stay.status is ReservationStatus.CHECKED_OUT and stay.departure_date is not None:
            end = max(min(end, stay.departure_date), stay.checkin_date)
        add(stay.checkin_date, arrivals=1, arrival_nights=booked_nights)
        for night in range((end - stay.checkin_date).days):
            add(stay.checkin_date + timedelta(days=night), sold=1, room_revenue=parts[night])
        if (stay.status is ReservationStatus.CHECKED_OUT and stay.departure_date is not None
                and stay.additional_charges):
            add(stay.departure_date, other_revenue=stay.additional_charges)
    return {(stay.room_type, day): DayShare(**parts) for day, parts in shares.items()}


def room_shares(room: RoomState | None) -> Shares:
    """The nights a room is out of order (it stays in supply: USALI)."""
    if room is None:
        return {}
    return {(room.room_type, night): DayShare(out_of_order=1, currency=room.currency)
            for night in room.out_of_order_dates}


class DayFact(BaseModel):
    """`source`'s whole contribution to one room type's business day; None: none any more."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: Literal["day"] = "day"
    hotel_id: str
    room_type: str
    day: date
    source: str
    """`stay:<reservation_id>` or `room:<room_id>`."""
    share: DayShare | None


class RoomFact(BaseModel):
    """A room in the house from `since` on (supply), or gone from its type (`since` None)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: Literal["room"] = "room"
    hotel_id: str
    room_type: str
    room_id: str
    since: date | None


def share_facts(hotel_id: str, source: str, before: Shares, after: Shares) -> list[DayFact]:
    """The days whose contribution from `source` changed, with the new contribution."""
    return [DayFact(hotel_id=hotel_id, room_type=room_type, day=day, source=source,
                    share=after.get((room_type, day)))
            for room_type, day in sorted({*before, *after})
            if before.get((room_type, day)) != after.get((room_type, day))]


SHARE_INPUTS = ("room_type", "checkin_date", "checkout_date", "total_amount", "currency",
                "customer_id", "departure_date", "additional_charges")
"""The fields of a stay `stay_shares` reads besides its status, of which it reads only
whether the stay is on the books, in house, or checked out."""


def _share_inputs(stay: ReservationState) -> tuple[Any, ...]:
    status = stay.status
    phase = ("booked" if status in _ON_THE_BOOKS else status if status in _IN_HOUSE
             else None)
    return (phase, *(getattr(stay, name) for name in SHARE_INPUTS))


def stay_facts(before: ReservationState | None, after: ReservationState) -> list[DayFact]:
    if before is not None and _share_inputs(before) == _share_inputs(after):
        return []  # a confirmation, a payment status, a room given: no day changes
    return share_facts(after.hotel_id, f"stay:{after.reservation_id}",
                       stay_shares(before), stay_shares(after))


def room_facts(before: RoomState | None, after: RoomState) -> list[DayFact | RoomFact]:
    """Out-of-order nights that changed; the room's supply when it is new (in the house from
    the date its first status applies to) or changed type (the room moves from that date on
    for every day: supply keeps no history of types)."""
    facts: list[DayFact | RoomFact] = list(share_facts(
        after.hotel_id, f"room:{after.room_id}", room_shares(before), room_shares(after)))
    if before is None or before.room_type != after.room_type:
        since = after.availability_date
        if before is not None:
            facts.append(RoomFact(hotel_id=after.hotel_id, room_type=before.room_type,
                                  room_id=after.room_id, since=None))
        facts.append(RoomFact(hotel_id=after.hotel_id, room_type=after.room_type,
                              room_id=after.room_id, since=since))
    return facts
