"""The local cache: readers, the last change wins in any delivery order, conflicts, cursor."""

from __future__ import annotations

import random
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.client.cache import CacheSchemaError, LocalCache

HOTEL = "H1"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
_numbers = iter(range(1, 10**9))


def _event(
    kind: str,
    data: dict[str, Any],
    *,
    at: datetime = T0,
    action: str = "updated",
    hotel_id: str = HOTEL,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or f"ev-{next(_numbers)}",
        "type": kind,
        "action": action,
        "hotel_id": hotel_id,
        "occurred_at": at.isoformat(),
        "data": data,
    }


def _room(room_id: str, number: str, status: str = "vacant_clean", version: int = 1) -> dict:
    return {"room_id": room_id, "room_number": number, "status": status, "version": version}


def _stay(reservation_id: str, checkin: str, checkout: str, version: int = 1) -> dict:
    return {
        "reservation_id": reservation_id,
        "room_type": "DBL",
        "checkin_date": checkin,
        "checkout_date": checkout,
        "total_amount": "240.00",
        "currency": "EUR",
        "status": "confirmed",
        "version": version,
    }


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[LocalCache]:
    with LocalCache(tmp_path / "cache" / "cache.db") as opened:
        yield opened


# --- readers -------------------------------------------------------------------------


def test_rooms_by_number_and_status(cache: LocalCache) -> None:
    for room_id, number, status in [
        ("r-101", "101", "occupied_clean"),
        ("r-2", "2", "vacant_clean"),
        ("r-10", "10", "vacant_clean"),
        ("r-b2", "B2", "vacant_dirty"),
    ]:
        assert cache.apply(_event("room", _room(room_id, number, status)))
    cache.apply(_event("room", _room("elsewhere", "1"), hotel_id="H2"))

    assert [r.data["room_number"] for r in cache.rooms(HOTEL)] == ["2", "10", "101", "B2"]
    assert [r.entity_id for r in cache.rooms(HOTEL, status="vacant_clean")] == ["r-2", "r-10"]
    assert cache.rooms(HOTEL, status="out_of_order") == []
    room = cache.room(HOTEL, "r-101")
    assert room is not None
    assert (room.kind, room.hotel_id, room.version) == ("room", HOTEL, 1)
    assert room.occurred_at == T0
    assert not room.pending and not room.refused
    assert cache.room(HOTEL, "nope") is None
    assert cache.room("H2", "r-101") is None


def test_reservations_arriving_and_departing(cache: LocalCache) -> None:
    cache.apply(_event("reservation", _stay("S-2", "2026-03-02", "2026-03-04")))
    cache.apply(_event("reservation", _stay("S-1", "2026-03-01", "2026-03-02")))
    cache.apply(_event("reservation", _stay("S-3", "2026-03-02", "2026-03-03")))

    assert [r.entity_id for r in cache.reservations(HOTEL)] == ["S-1", "S-2", "S-3"]
    arriving = cache.reservations(HOTEL, arriving=date(2026, 3, 2))
    assert [r.entity_id for r in arriving] == ["S-2", "S-3"]
    departing = cache.reservations(HOTEL, departing=date(2026, 3, 2))
    assert [r.entity_id for r in departing] == ["S-1"]
    both = cache.reservations(HOTEL, arriving=date(2026, 3, 2), departing=date(2026, 3, 3))
    assert [r.entity_id for r in both] == ["S-3"]
    stay = cache.reservation(HOTEL, "S-1")
    assert stay is not None and stay.data["total_amount"] == "240.00"
    assert cache.reservation(HOTEL, "S-9") is None


def test_customer_reader(cache: LocalCache) -> None:
    data = {"customer_id": "C-1", "name": "Ada", "updated_fields": ["name"], "version": 1}
    cache.apply(_event("customer", data))
    customer = cache.customer(HOTEL, "C-1")
    assert customer is not None
    assert customer.data == {"customer_id": "C-1", "name": "Ada", "version": 1}
    assert cache.customer(HOTEL, "C-2") is None


# --- check-in and check-out ----------------------------------------------------------


def test_check_in_and_out_change_the_reservation(cache: LocalCache) -> None:
    cache.apply(_event("reservation", _stay("S-1", "2026-03-01", "2026-03-03"), at=T0))
    checkin_time = (T0 + timedelta(hours=6)).isoformat()
    checked_in = _event(
        "checkin_checkout",
        {"reservation_id": "S-1", "room_number": "204", "actual_checkin_time": checkin_time},
        at=T0 + timedelta(hours=6),
        action="checked_in",
    )
    assert cache.apply(checked_in)
    stay = cache.reservation(HOTEL, "S-1")
    assert stay is not None
    assert stay.data["status"] == "checked_in"
    assert stay.data["room_number"] == "204"
    assert stay.data["actual_checkin_time"] == checkin_time
    assert stay.event_id == checked_in["event_id"]
    assert stay.version == 1  # the reservation's own numbering

    checkout_time = (T0 + timedelta(days=2)).isoformat()
    assert cache.apply(
        _event(
            "checkin_checkout",
            {"reservation_id": "S-1", "actual_checkout_time": checkout_time},
            at=T0 + timedelta(days=2),
            action="checked_out",
        )
    )
    stay = cache.reservation(HOTEL, "S-1")
    assert stay is not None
    assert stay.data["status"] == "checked_out"
    assert stay.data["room_number"] == "204"
    assert stay.data["actual_checkout_time"] == checkout_time


def test_no_show_and_a_late_movement(cache: LocalCache) -> None:
    cache.apply(_event("reservation", _stay("S-1", "2026-03-01", "2026-03-03"), at=T0))
    no_show = {"reservation_id": "S-1"}
    assert cache.apply(
        _event("checkin_checkout", no_show, at=T0 + timedelta(days=1), action="no_show")
    )
    earlier = _event("checkin_checkout", no_show, at=T0 - timedelta(hours=1), action="checked_in")
    assert not cache.apply(earlier)
    stay = cache.reservation(HOTEL, "S-1")
    assert stay is not None and stay.data["status"] == "no_show"


def test_a_movement_of_an_unknown_reservation_is_ignored_until_it_is_known(
    cache: LocalCache,
) -> None:
    movement = _event(
        "checkin_checkout",
        {"reservation_id": "S-1", "room_number": "3"},
        at=T0 + timedelta(hours=1),
        action="checked_in",
    )
    assert not cache.apply(movement)
    assert cache.reservation(HOTEL, "S-1") is None
    cache.apply(_event("reservation", _stay("S-1", "2026-03-01", "2026-03-03"), at=T0))
    assert cache.apply(movement)  # the redelivery, now that the reservation is known
    stay = cache.reservation(HOTEL, "S-1")
    assert stay is not None and stay.data["status"] == "checked_in"


# --- the last change wins --------------------------------------------------------------


def test_an_older_event_arriving_late_does_not_overwrite(cache: LocalCache) -> None:
    assert cache.apply(_event("room", _room("r-1", "1", "occupied_clean", 2), at=T0))
    assert not cache.apply(
        _event("room", _room("r-1", "1", "vacant_dirty", 3), at=T0 - timedelta(seconds=1))
    )
    room = cache.room(HOTEL, "r-1")
    assert room is not None and room.data["status"] == "occupied_clean"


def test_times_compare_as_times_not_text(cache: LocalCache) -> None:
    plus_two = timezone(timedelta(hours=2))
    # 10:00+02:00 is 08:00 UTC, before 09:00 UTC, though its text sorts after it
    cache.apply(_event("room", _room("r-1", "1", "vacant_clean"), at=T0 + timedelta(hours=1)))
    late = _event("room", _room("r-1", "1", "vacant_dirty"), at=T0.astimezone(plus_two))
    assert late["occurred_at"] == "2026-03-01T10:00:00+02:00"
    assert not cache.apply(late)
    room = cache.room(HOTEL, "r-1")
    assert room is not None and room.data["status"] == "vacant_clean"


def test_at_the_same_time_only_a_higher_version_wins(cache: LocalCache) -> None:
    cache.apply(_event("room", _room("r-1", "1", "vacant_clean", 2)))
    assert not cache.apply(_event("room", _room("r-1", "1", "vacant_dirty", 2)))
    assert not cache.apply(_event("room", _room("r-1", "1", "vacant_dirty", 1)))
    assert cache.apply(_event("room", _room("r-1", "1", "inspected", 3)))
    room = cache.room(HOTEL, "r-1")
    assert room is not None and (room.data["status"], room.version) == ("inspected", 3)


def test_a_redelivery_is_a_no_op(cache: LocalCache) -> None:
    event = _event("room", _room("r-1", "1"))
    assert cache.apply(event)
    assert not cache.apply(event)
    assert not cache.apply({**event, "data": _room("r-1", "1", "vacant_dirty", 9)})
    room = cache.room(HOTEL, "r-1")
    assert room is not None and room.data["status"] == "vacant_clean"


def test_customer_events_merge_field_by_field(cache: LocalCache) -> None:
    cache.apply(
        _event(
            "customer",
            {
                "customer_id": "C-1",
                "name": "Ada",
                "email": "ada@example.org",
                "phone": "1",
                "updated_fields": ["name", "email", "phone"],
                "version": 1,
            },
            at=T0,
        )
    )
    cache.apply(
        _event(
            "customer",
            {
                "customer_id": "C-1",
                "name": None,
                "email": "new@example.org",
                "phone": None,
                "updated_fields": ["phone"],
                "version": 2,
            },
            at=T0 + timedelta(minutes=1),
        )
    )
    customer = cache.customer(HOTEL, "C-1")
    assert customer is not None
    assert customer.data == {
        "customer_id": "C-1",
        "name": "Ada",
        "email": "new@example.org",
        "phone": None,
        "version": 2,
    }
    assert customer.version == 2


def test_a_late_customer_event_fills_only_fields_no_newer_event_set(cache: LocalCache) -> None:
    newer = {
        "customer_id": "C-1",
        "email": "new@example.org",
        "updated_fields": ["email"],
        "version": 2,
    }
    older = {
        "customer_id": "C-1",
        "email": "old@example.org",
        "rank_id": "gold",
        "updated_fields": ["email", "rank_id"],
        "version": 1,
    }
    cache.apply(_event("customer", newer, at=T0 + timedelta(minutes=1), event_id="new"))
    assert cache.apply(_event("customer", older, at=T0, event_id="old"))
    customer = cache.customer(HOTEL, "C-1")
    assert customer is not None
    assert customer.data["email"] == "new@example.org"
    assert customer.data["rank_id"] == "gold"
    assert (customer.event_id, customer.version) == ("new", 2)


def test_other_kinds_are_ignored(cache: LocalCache) -> None:
    assert not cache.apply(_event("analytics", {"report_id": "x"}))


# --- pending changes -------------------------------------------------------------------


def test_a_local_change_is_pending_until_confirmed(cache: LocalCache) -> None:
    local = _event("room", _room("r-1", "1", "vacant_dirty"))
    cache.apply(local, pending=True)
    room = cache.room(HOTEL, "r-1")
    assert room is not None and room.pending
    cache.confirm("someone-else")
    assert (room := cache.room(HOTEL, "r-1")) is not None and room.pending
    cache.confirm(local["event_id"])
    assert (room := cache.room(HOTEL, "r-1")) is not None and not room.pending


def test_a_newer_change_from_the_hub_replaces_a_pending_one(cache: LocalCache) -> None:
    cache.apply(_event("room", _room("r-1", "1", "vacant_dirty")), pending=True)
    cache.apply(_event("room", _room("r-1", "1", "inspected", 2), at=T0 + timedelta(seconds=1)))
    room = cache.room(HOTEL, "r-1")
    assert room is not None and not room.pending and room.data["status"] == "inspected"


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: e.pop("data"), "data"),
        (lambda e: e["data"].pop("room_id"), "data.room_id"),
        (lambda e: e.pop("event_id"), "event_id"),
        (lambda e: e.pop("hotel_id"), "hotel_id"),
        (lambda e: e.pop("occurred_at"), "occurred_at"),
        (lambda e: e.pop("type"), "type"),
        (lambda e: e.update(occurred_at="2026-03-01T09:00:00"), "occurred_at"),
        (lambda e: e.update(occurred_at="yesterday"), "occurred_at"),
        (lambda e: e.update(data=["not", "an", "object"]), "data"),
        (lambda e: e["data"].update(version="2"), "data.version"),
    ],
)
def test_bad_input_is_refused_by_name_and_keeps_what_was_stored(
    cache: LocalCache, change: Any, field: str
) -> None:
    cache.apply(_event("room", _room("r-1", "1", "vacant_clean")))
    bad = _event("room", _room("r-1", "1", "vacant_dirty", 5), at=T0 + timedelta(hours=1))
    change(bad)
    with pytest.raises(ValueError, match=re.escape(field)):
        cache.apply(bad)
    room = cache.room(HOTEL, "r-1")
    assert room is not None and room.data["status"] == "vacant_clean"


def test_bad_movements_and_customers_are_refused_by_name(cache: LocalCache) -> None:
    with pytest.raises(ValueError, match=r"data\.reservation_id"):
        cache.apply(_event("checkin_checkout", {"room_number": "1"}, action="checked_in"))
    with pytest.raises(ValueError, match="action"):
        cache.apply(_event("checkin_checkout", {"reservation_id": "S-1"}, action="danced"))
    with pytest.raises(ValueError, match=r"data\.customer_id"):
        cache.apply(_event("customer", {"name": "Ada"}))
    with pytest.raises(ValueError, match=r"data\.updated_fields"):
        cache.apply(_event("customer", {"customer_id": "C-1", "updated_fields": "name"}))


# --- any delivery order ends in the same rows --------------------------------------------

_OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
_CUSTOMER_FIELDS = ["name", "email", "phone", "rank_id", "total_points"]


@st.composite
def _histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events for a few entities, each entity's changes with distinct (occurred_at, version)."""
    events: list[dict[str, Any]] = []
    entities = [("room", "r-1"), ("room", "r-2"), ("reservation", "S-1"), ("customer", "C-1")]
    for kind, entity_id in entities:
        keys = draw(
            st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3)), max_size=6, unique=True)
        )
        for minute, version in keys:
            at = (T0 + timedelta(minutes=minute)).astimezone(draw(st.sampled_from(_OFFSETS)))
            if kind == "room":
                status = draw(st.sampled_from(["vacant_clean", "vacant_dirty", "inspected"]))
                data = _room(entity_id, entity_id[-1], status, version)
            elif kind == "reservation":
                data = {
                    **_stay(entity_id, "2026-03-01", "2026-03-02", version),
                    "status": draw(st.sampled_from(["confirmed", "cancelled"])),
                }
            else:
                values = draw(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            name: st.none() | st.sampled_from(["a", "b", "c"])
                            for name in _CUSTOMER_FIELDS
                        },
                    )
                )
                updated = draw(st.lists(st.sampled_from(_CUSTOMER_FIELDS), unique=True))
                data = {
                    "customer_id": entity_id,
                    **values,
                    "updated_fields": updated,
                    "version": version,
                }
            events.append(_event(kind, data, at=at))
    return events


def _rows(cache: LocalCache) -> list[tuple[Any, ...]]:
    found = [*cache.rooms(HOTEL), *cache.reservations(HOTEL)]
    customer = cache.customer(HOTEL, "C-1")
    found += [customer] if customer else []
    return [(c.kind, c.entity_id, c.data, c.version, c.occurred_at, c.event_id) for c in found]


def _order(event: dict[str, Any]) -> tuple[datetime, int]:
    return datetime.fromisoformat(event["occurred_at"]), event["data"]["version"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=_histories(), seed=st.integers(0, 2**32))
def test_any_delivery_order_ends_in_the_rows_of_time_order(
    events: list[dict[str, Any]], seed: int
) -> None:
    chance = random.Random(seed)
    delivered = events + [chance.choice(events) for _ in range(len(events) // 2)]
    chance.shuffle(delivered)
    with tempfile.TemporaryDirectory() as directory:
        with LocalCache(Path(directory) / "in-order.db") as in_order:
            for event in sorted(events, key=_order):
                in_order.apply(event)
            expected = _rows(in_order)
        with LocalCache(Path(directory) / "shuffled.db") as shuffled:
            for event in delivered:
                shuffled.apply(event)
            assert _rows(shuffled) == expected
    for kind, entity_id, data, *_ in expected:  # whole snapshots: the latest one stands
        if kind != "customer":
            mine = [e for e in events if e["data"].get(f"{kind}_id") == entity_id]
            assert data == max(mine, key=_order)["data"]


# --- conflicts ---------------------------------------------------------------------------


def _refusal(refusal_id: str, refused_event_id: str, at: datetime, **more: Any) -> dict:
    return {
        "refusal_id": refusal_id,
        "refused_event_id": refused_event_id,
        "event_type": "room.status_changed",
        "hotel_id": HOTEL,
        "entity_id": "r-1",
        "origin_system": "hotel-hub",
        "reason_code": "offline_conflict",
        "reason": "a newer change stands",
        "current_state": '{"status": "occupied_clean"}',
        "created_offline": True,
        "refused_at": at.isoformat(),
        **more,
    }


def test_conflicts_round_trip_and_resolve(cache: LocalCache) -> None:
    local = _event("room", _room("r-1", "1", "vacant_dirty"))
    cache.apply(local, pending=True)
    later = _refusal(
        "f-2", "other", T0 + timedelta(minutes=5), current_state=None, created_offline=None
    )
    del later["created_offline"]
    cache.record_refusal(later)
    first = cache.record_refusal(_refusal("f-1", local["event_id"], T0 + timedelta(minutes=1)))

    assert first.refused_event_id == local["event_id"]
    assert (first.event_type, first.entity_id, first.reason_code) == (
        "room.status_changed",
        "r-1",
        "offline_conflict",
    )
    assert first.current_state == '{"status": "occupied_clean"}'
    assert first.created_offline
    assert first.refused_at == T0 + timedelta(minutes=1)
    assert first.resolved_at is None and first.resolution is None
    room = cache.room(HOTEL, "r-1")
    assert room is not None and room.refused and not room.pending

    again = cache.record_refusal(_refusal("f-1", local["event_id"], T0, reason="changed"))
    assert again == first
    conflicts = cache.conflicts()
    assert [c.refusal_id for c in conflicts] == ["f-1", "f-2"]
    assert conflicts[1].current_state is None and not conflicts[1].created_offline

    cache.resolve("f-1", "kept the hub's state")
    assert [c.refusal_id for c in cache.conflicts()] == ["f-2"]
    everything = cache.conflicts(unresolved=False)
    assert [c.refusal_id for c in everything] == ["f-1", "f-2"]
    assert everything[0].resolution == "kept the hub's state"
    assert everything[0].resolved_at is not None
    with pytest.raises(KeyError, match="f-9"):
        cache.resolve("f-9", "nothing")


def test_a_refusal_of_an_older_change_leaves_the_row_alone(cache: LocalCache) -> None:
    old = _event("room", _room("r-1", "1", "vacant_dirty"))
    cache.apply(old, pending=True)
    cache.apply(_event("room", _room("r-1", "1", "inspected", 2), at=T0 + timedelta(seconds=1)))
    cache.record_refusal(_refusal("f-1", old["event_id"], T0 + timedelta(minutes=1)))
    room = cache.room(HOTEL, "r-1")
    assert room is not None and not room.refused


def test_a_refusal_without_its_fields_is_refused_by_name(cache: LocalCache) -> None:
    refusal = _refusal("f-1", "e", T0)
    del refusal["refused_event_id"]
    with pytest.raises(ValueError, match="refused_event_id"):
        cache.record_refusal(refusal)
    assert cache.conflicts() == []


# --- cursor and file ------------------------------------------------------------------


def test_the_cursor_is_one_row_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with LocalCache(path) as cache:
        assert cache.cursor() is None
        cache.save_cursor("0:41")
        cache.save_cursor("0:42,1:7")
        assert cache.cursor() == "0:42,1:7"
        cache.apply(_event("room", _room("r-1", "1")))
    with LocalCache(path) as cache:
        assert cache.cursor() == "0:42,1:7"
        assert cache.room(HOTEL, "r-1") is not None
        cache.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    LocalCache(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(CacheSchemaError, match="7"):
        LocalCache(path)
