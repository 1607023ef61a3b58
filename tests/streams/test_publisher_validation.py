"""The publisher refuses bad or forbidden events with errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams.exceptions import EventValidationError, PublishForbidden
from streams.kinds import Priority, System
from streams.publisher import build_event


def reservation(**data: Any) -> dict[str, Any]:
    return {
        "type": "reservation",
        "action": "created",
        "data": {
            "reservation_id": "B1", "room_type": "DBL", "checkin_date": "2026-11-23",
            "checkout_date": "2026-11-25", "total_amount": "29000", "currency": "JPY",
            "status": "confirmed", "origin": "phone", "version": 1, **data,
        },
    }


def build(document: dict[str, Any], system: System = System.HOTEL_PMS) -> Any:
    return build_event(document, publisher=system, default_hotel_id="HTL-1")


def test_enriches_with_ids_times_and_the_kind_policy() -> None:
    event = build(reservation())
    assert event.hotel_id == "HTL-1"
    assert event.priority is Priority.HIGH
    assert event.targets == ["hotel-member", "hotel-pms", "hotel-saas"]
    assert event.origin_system == event.updated_by_system == "hotel-pms"
    assert event.synced_at is not None and event.occurred_at.microsecond % 1000 == 0


def test_missing_and_wrong_fields_are_named() -> None:
    document = reservation(total_amount="abc")
    del document["data"]["room_type"]
    with pytest.raises(EventValidationError) as caught:
        build(document)
    assert set(caught.value.errors) == {"data.room_type", "data.total_amount"}
    assert "data.room_type" in str(caught.value)


def test_money_as_float_is_refused() -> None:
    with pytest.raises(EventValidationError) as caught:
        build(reservation(total_amount=12000.5))
    assert "not a float" in caught.value.errors["data.total_amount"]


def test_more_decimals_than_the_contract_are_refused() -> None:
    with pytest.raises(EventValidationError) as caught:
        build(reservation(total_amount="10.12345"))
    assert "data.total_amount" in caught.value.errors


def test_checkout_before_checkin_is_refused() -> None:
    with pytest.raises(EventValidationError, match="checkout_date must be after"):
        build(reservation(checkout_date="2026-11-22"))


def test_critical_event_cannot_be_downgraded() -> None:
    document = {
        "type": "checkin_checkout", "action": "checked_in", "priority": "LOW",
        "delivery_guarantee": "at_least_once",
        "data": {"reservation_id": "B1", "room_number": "201", "payment_status": "pending"},
    }
    with pytest.raises(EventValidationError) as caught:
        build(document)
    assert set(caught.value.errors) == {"priority", "delivery_guarantee"}


def test_stating_the_fixed_values_is_accepted() -> None:
    event = build({**reservation(), "priority": "HIGH", "targets": ["hotel-member", "hotel-pms",
                                                                    "hotel-saas"]})
    assert event.priority is Priority.HIGH


@pytest.mark.parametrize(
    ("kind", "system"),
    [("room", System.HOTEL_MEMBER), ("checkin_checkout", System.HOTEL_SAAS),
     ("customer", System.HOTEL_SAAS), ("analytics", System.HOTEL_PMS)],
)
def test_who_may_publish_what(kind: str, system: System) -> None:
    with pytest.raises(PublishForbidden, match=f"{system} may not publish {kind}"):
        build({"type": kind, "action": "x", "data": {}}, system)


def test_unknown_kind_names_the_type_field() -> None:
    with pytest.raises(EventValidationError) as caught:
        build({"type": "invoice", "action": "created", "data": {}})
    assert "type" in caught.value.errors


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(EventValidationError) as caught:
        build({**reservation(), "occurred_at": datetime(2026, 11, 23, 9, 0)})
    assert "occurred_at" in caught.value.errors
    assert build({**reservation(), "occurred_at": datetime(2026, 11, 23, tzinfo=UTC)})


def test_updated_by_cannot_be_spoofed() -> None:
    with pytest.raises(EventValidationError) as caught:
        build({**reservation(), "updated_by_system": "hotel-member"})
    assert "updated_by_system" in caught.value.errors
