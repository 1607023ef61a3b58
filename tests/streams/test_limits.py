"""Limits a hotel sets (stay length, amounts, text sizes): `streams.core.limits`, pure, and the
publisher that refuses events beyond them with the field named."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core.documents import build_event
from streams.core.exceptions import EventValidationError
from streams.core.kinds import EventKind
from streams.core.limits import Limits, violations
from streams.core.models import HotelEvent
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from tests.support.events import sample

ROOMY = Limits(max_stay_nights=100_000, max_text_length=10**9, max_document_length=10**9,
               max_list_length=10**6)
"""Limits nothing in these tests reaches, to build events that only the limit under test breaks."""


def event(kind: EventKind, **data: Any) -> HotelEvent:
    system, document = sample(kind, **data)
    return build_event(document, publisher=system, default_hotel_id="HTL-1", limits=ROOMY)


def stay(nights: int) -> HotelEvent:
    checkin = date(2026, 11, 23)
    return event(EventKind.RESERVATION, checkin_date=checkin.isoformat(),
                 checkout_date=(checkin + timedelta(days=nights)).isoformat())


def with_data(found: HotelEvent, **data: Any) -> HotelEvent:
    """`found` with payload fields replaced, unvalidated: what a rule might be handed."""
    return found.model_copy(update={"data": found.data.model_copy(update=data)})


@pytest.mark.parametrize("kind", list(EventKind))
def test_sample_events_keep_the_default_limits(kind: EventKind) -> None:
    assert violations(event(kind), Limits()) == {}


def test_a_year_and_a_day_is_the_longest_stay_by_default() -> None:
    assert violations(stay(366), Limits()) == {}
    found = violations(stay(367), Limits())
    assert set(found) == {"data.checkout_date"}
    assert "367 nights" in found["data.checkout_date"]
    assert "366" in found["data.checkout_date"]


def test_a_200_year_stay_is_refused() -> None:
    assert "data.checkout_date" in violations(stay(73_000), Limits())


@pytest.mark.parametrize(
    ("kind", "field"),
    [(EventKind.RESERVATION, "total_amount"), (EventKind.ROOM, "base_price"),
     (EventKind.CHECKIN_CHECKOUT, "additional_charges"), (EventKind.ANALYTICS, "total_revenue")],
)
def test_negative_amounts_are_refused_and_zero_is_fine(kind: EventKind, field: str) -> None:
    zero = event(kind, **{field: "0"})
    assert violations(zero, Limits()) == {}
    found = violations(with_data(zero, **{field: Decimal("-0.001")}), Limits())
    assert set(found) == {f"data.{field}"}
    assert "negative" in found[f"data.{field}"]


@pytest.mark.parametrize(
    ("kind", "field"),
    [(EventKind.ROOM, "maintenance_notes"), (EventKind.CUSTOMER, "name"),
     (EventKind.CUSTOMER, "email"), (EventKind.RESERVATION, "room_number"),
     (EventKind.ANALYTICS, "report_type")],
)
def test_free_text_is_bounded(kind: EventKind, field: str) -> None:
    fits = event(kind, **{field: "x" * 1000})
    assert violations(fits, Limits()) == {}
    found = violations(with_data(fits, **{field: "x" * 1001}), Limits())
    assert found == {f"data.{field}": "1001 characters; at most 1000"}


def test_envelope_text_lists_and_documents_are_bounded() -> None:
    base = event(EventKind.CUSTOMER)
    long_id = base.model_copy(update={"correlation_id": "c" * 1001})
    assert set(violations(long_id, Limits())) == {"correlation_id"}
    fields = with_data(base, updated_fields=["email", "n" * 1001])
    assert set(violations(fields, Limits())) == {"data.updated_fields.1"}
    many = with_data(base, updated_fields=["email"] * 101)
    assert set(violations(many, Limits())) == {"data.updated_fields"}
    report = event(EventKind.ANALYTICS)
    assert violations(with_data(report, detailed_data="{}" + " " * 50_000), Limits()) == {}
    big = with_data(report, detailed_data=" " * 100_001)
    assert set(violations(big, Limits())) == {"data.detailed_data"}


def test_every_violation_is_reported_at_once() -> None:
    bad = with_data(stay(400), total_amount=Decimal("-1"), room_number="9" * 2000)
    assert set(violations(bad, Limits())) == {
        "data.checkout_date", "data.total_amount", "data.room_number"}


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_stay_nights"):
        Limits(max_stay_nights=0)


# -- settings and the publisher ------------------------------------------------------------


def test_settings_build_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HubSettings().limits() == Limits()
    monkeypatch.setenv("HOTELHUB_MAX_STAY_NIGHTS", "30")
    assert HubSettings().limits().max_stay_nights == 30


def test_publisher_refuses_events_beyond_the_limits_naming_the_field() -> None:
    system, document = sample(EventKind.RESERVATION, total_amount="-5",
                              checkin_date="2026-01-01", checkout_date="2027-06-01")
    with pytest.raises(EventValidationError) as caught:
        build_event(document, publisher=system, default_hotel_id="HTL-1")
    assert set(caught.value.errors) == {"data.total_amount", "data.checkout_date"}
    assert "data.checkout_date" in str(caught.value)


def test_publisher_uses_the_configured_stay_limit() -> None:
    """The publisher takes its limits from the settings it is given; `build_event` alone
    applies the default limits."""
    system, document = sample(EventKind.RESERVATION)  # two nights
    publisher = HotelEventPublisher(system=system, registry=_NoRegistry(),
                                    settings=HubSettings(max_stay_nights=1))
    with pytest.raises(EventValidationError) as caught:
        publisher.build({**document, "hotel_id": "HTL-1"})
    assert set(caught.value.errors) == {"data.checkout_date"}
    assert build_event(document, publisher=system, default_hotel_id="HTL-1")
    assert build_event(document, publisher=system, default_hotel_id="HTL-1",
                       limits=Limits(max_stay_nights=2))


class _NoRegistry:
    """Building an event never asks the registry."""

    async def register(self, subject: str, schema_text: str) -> int:
        raise AssertionError("not called")

    async def schema_by_id(self, schema_id: int) -> str:
        raise AssertionError("not called")


# -- properties ------------------------------------------------------------------------------

BASE_STAY = stay(1)
BASE_ROOM = event(EventKind.ROOM)


@given(nights=st.integers(min_value=1, max_value=5000),
       limit=st.integers(min_value=1, max_value=2000))
def test_a_stay_is_refused_exactly_when_longer_than_the_limit(nights: int, limit: int) -> None:
    checkout = BASE_STAY.data.checkin_date + timedelta(days=nights)  # type: ignore[union-attr]
    found = violations(with_data(BASE_STAY, checkout_date=checkout),
                       Limits(max_stay_nights=limit))
    assert ("data.checkout_date" in found) == (nights > limit)
    assert set(found) <= {"data.checkout_date"}


@given(amount=st.decimals(min_value=Decimal("-999999999999.999"),
                          max_value=Decimal("999999999999.999"), places=3))
def test_an_amount_is_refused_exactly_when_negative(amount: Decimal) -> None:
    found = violations(with_data(BASE_STAY, total_amount=amount), Limits())
    assert found == ({"data.total_amount": f"must not be negative ({amount})"}
                     if amount < 0 else {})


@given(notes=st.text(max_size=1200), limit=st.integers(min_value=1, max_value=1100))
def test_text_is_refused_exactly_when_longer_than_the_limit(notes: str, limit: int) -> None:
    found = violations(with_data(BASE_ROOM, maintenance_notes=notes),
                       Limits(max_text_length=limit))
    assert ("data.maintenance_notes" in found) == (len(notes) > limit)


@given(nights=st.integers(min_value=1, max_value=800),
       amount=st.decimals(min_value=-1000, max_value=1000, places=3),
       room_number=st.text(min_size=0, max_size=1100))
def test_the_publisher_refuses_exactly_what_violations_names(
    nights: int, amount: Decimal, room_number: str
) -> None:
    checkout = date(2026, 11, 23) + timedelta(days=nights)
    expected = violations(with_data(BASE_STAY, checkout_date=checkout, total_amount=amount,
                                    room_number=room_number), Limits())
    system, document = sample(
        EventKind.RESERVATION, checkin_date="2026-11-23", checkout_date=checkout.isoformat(),
        total_amount=str(amount), room_number=room_number)
    try:
        build_event(document, publisher=system, default_hotel_id="HTL-1", limits=Limits())
    except EventValidationError as exc:
        assert exc.errors == expected != {}
    else:
        assert expected == {}
