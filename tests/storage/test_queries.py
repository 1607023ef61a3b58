"""Questions to the Event Storage: filters, pages that never skip or repeat, a booking's
chain, retention."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.kinds import EventKind
from streams.storage.partitions import (
    drop_expired,
    ensure_partitions,
    months_back,
    next_month,
    partitions,
)
from streams.storage.queries import EventFilter, QueryError, chain, find, kind_pattern
from tests.support.stored import T0, store, stored_event, stored_refusal


def hotel() -> str:
    return f"HTL-Q-{uuid.uuid4().hex[:6].upper()}"


async def test_a_booking_chain_runs_from_booking_to_refusal(
        storage_dsn: str, conn: psycopg.AsyncConnection) -> None:
    h = hotel()
    booking_id = f"{h}-B1"
    booking = stored_event(EventKind.RESERVATION, "created", h, booking_id, minute=0,
                           source="hotel-saas", targets=("hotel-pms",))
    checkin = stored_event(EventKind.CHECKIN_CHECKOUT, "checked_in", h, booking_id, minute=59)
    derived = stored_event(EventKind.ROOM, "status_changed", h, f"{h}-R201", minute=60,
                           source="hotel-hub", correlation_id=booking_id,
                           causation_id=str(checkin.event_id))
    late = stored_event(EventKind.ROOM, "status_changed", h, f"{h}-R201", minute=61,
                        causation_id=str(derived.event_id))
    refusal = stored_refusal(late, "stale_version", minute=62)
    unrelated = stored_event(EventKind.RESERVATION, "created", h, f"{h}-B2", minute=5)
    await store(storage_dsn, [booking, checkin, derived, late, refusal, unrelated])

    found = await chain(conn, booking_id)
    assert [row["record_id"] for row in found] == [
        str(r.record_id) for r in (booking, checkin, derived, late, refusal)]
    assert [row["record_id"] for row in await chain(conn, str(late.event_id))] == [
        str(late.record_id), str(refusal.record_id)]
    assert await chain(conn, "no such thing") == []


async def test_filters_each_narrow_and_a_system_sees_only_its_own(
        storage_dsn: str, conn: psycopg.AsyncConnection) -> None:
    h = hotel()
    rows = [
        stored_event(EventKind.RESERVATION, "created", h, "R-1", minute=0,
                     source="hotel-saas", targets=("hotel-pms",)),
        stored_event(EventKind.RESERVATION, "cancelled", h, "R-1", minute=10,
                     source="hotel-saas", targets=("hotel-pms",)),
        stored_event(EventKind.CUSTOMER, "updated", h, "C-1", minute=20,
                     source="hotel-member", targets=("hotel-pms",)),
        stored_event(EventKind.CHECKIN_CHECKOUT, "checked_in", h, "R-9", minute=30,
                     source="hotel-pms", targets=("hotel-member",)),
    ]
    await store(storage_dsn, rows)

    async def ids(**where: object) -> list[str]:
        page = await find(conn, EventFilter(hotel_id=h, **where), limit=100)  # type: ignore[arg-type]
        return [row["record_id"] for row in page.records]

    every = [str(r.record_id) for r in rows]
    assert await ids() == every
    assert await ids(entity_type="reservation", entity_id="R-1") == every[:2]
    assert await ids(kind="reservation") == every[:2]
    assert await ids(kind="reservation.cancelled") == every[1:2]
    assert await ids(kind="checkin_checkout") == every[3:]
    assert await ids(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30)) == \
        every[1:3]
    assert await ids(visible_to="hotel-saas") == every[:2]
    assert await ids(visible_to="hotel-member") == every[2:]
    assert await ids(hotel_ids=("elsewhere",)) == []


@pytest.mark.parametrize(("where", "named"), [
    ({"since": datetime(2026, 11, 24)}, "time zone"),
    ({"since": T0, "until": T0}, "not before"),
    ({"entity_id": "R-1"}, "entity_type"),
])
def test_bad_filters_say_what_is_wrong(where: dict[str, object], named: str) -> None:
    with pytest.raises(QueryError, match=named):
        EventFilter(**where)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["", "room%", "room status", "hotel."])
def test_a_kind_that_is_not_an_event_type_is_refused(kind: str) -> None:
    with pytest.raises(QueryError, match="kind"):
        kind_pattern(kind)


async def test_a_cursor_not_handed_out_is_refused(conn: psycopg.AsyncConnection) -> None:
    with pytest.raises(QueryError, match="cursor"):
        await find(conn, EventFilter(), after="bm90IGEgY3Vyc29y")


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=40),
       limit=st.integers(min_value=1, max_value=7))
async def test_pages_return_every_record_once_in_order(
        storage_dsn: str, conn: psycopg.AsyncConnection, minutes: list[int], limit: int) -> None:
    """Many records share a time (a hotel's batch at 06:00): the page boundary still holds."""
    h = hotel()
    rows = [stored_event(EventKind.ROOM, "status_changed", h, f"R{i}", minute=m, offset=i)
            for i, m in enumerate(minutes)]
    await store(storage_dsn, rows)
    seen: list[str] = []
    cursor = None
    while True:
        page = await find(conn, EventFilter(hotel_id=h), limit=limit, after=cursor)
        seen += [row["record_id"] for row in page.records]
        if page.next is None:
            break
        cursor = page.next
    expected = sorted(rows, key=lambda r: (r.occurred_at, r.record_id))
    assert seen == [str(r.record_id) for r in expected]


async def test_retention_drops_whole_months_only(
        storage_dsn: str, conn: psycopg.AsyncConnection) -> None:
    old = [date(2001, 1, 1), date(2001, 2, 1), date(2001, 3, 1)]
    h = hotel()
    await store(storage_dsn, [stored_event(EventKind.ROOM, "status_changed", h, "R1",
                                           occurred_at=datetime(2001, 2, 10, tzinfo=UTC))])
    with psycopg.connect(storage_dsn, autocommit=True) as blocking:
        ensure_partitions(blocking, set(old))
        dropped = drop_expired(blocking, keep_months=2, today=date(2001, 3, 15))
        assert dropped == ["event_store_y2001m01"]
        assert {date(2001, 2, 1), date(2001, 3, 1)} <= set(partitions(blocking))
        page = await find(conn, EventFilter(hotel_id=h))
        assert len(page.records) == 1  # February is within two months of March: kept
        drop_expired(blocking, keep_months=1, today=date(2001, 3, 15))
        assert (await find(conn, EventFilter(hotel_id=h))).records == []


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 1, 1)),
       st.integers(min_value=0, max_value=600))
def test_month_arithmetic(day: date, count: int) -> None:
    month = day.replace(day=1)
    back = months_back(month, count)
    for _ in range(count):
        back = next_month(back)
    assert back == month
