"""A refused event made offline is a conflict: its refusal goes to every system the event
targets as well as its sender, so the system whose change stands hears of it (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from streams.core.kinds import POLICIES, EventKind
from streams.core.models import Refusal, RefusalReason
from streams.wire.cloudevents import header_map, refusal_headers


def _refusal(*, created_offline: bool, event_type: str = "hotel.reservation.created"
             ) -> Refusal:
    return Refusal(
        refusal_id=uuid4(), refused_event_id=uuid4(), event_type=event_type, hotel_id="H1",
        entity_id="R1", origin_system="hotel-pms", updated_by_system="hotel-pms",
        reason_code=RefusalReason.OVERBOOKED, reason="sold out", created_offline=created_offline,
        refused_at=datetime(2026, 11, 24, tzinfo=UTC))


def _targets(refusal: Refusal, also: tuple[str, ...] = ()) -> list[str]:
    return header_map(refusal_headers(refusal, also=also))["ce_targets"].split(",")


def test_an_online_refusal_goes_to_its_sender_only() -> None:
    assert _targets(_refusal(created_offline=False)) == ["hotel-pms"]


def test_an_offline_refusal_goes_to_the_sender_and_the_kinds_targets_once_each() -> None:
    targets = _targets(_refusal(created_offline=True))
    expected = {"hotel-pms", *(t.value for t in POLICIES[EventKind.RESERVATION].targets)}
    assert set(targets) == expected and len(targets) == len(expected)
    assert targets[0] == "hotel-pms"


def test_an_offline_room_conflict_reaches_the_rooms_targets() -> None:
    targets = _targets(_refusal(created_offline=True, event_type="hotel.room.status_changed"))
    assert set(targets) == {"hotel-pms", *(t.value for t in POLICIES[EventKind.ROOM].targets)}
