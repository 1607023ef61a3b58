"""Query API parameter parsing and the room listing's order: any input is a 2xx or a 400,
never an exception that would make a 500 (no broker, no worker, no Faust app)."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core.query_params import (
    MAX_NIGHTS,
    BadQuery,
    hotel_rooms,
    natural_key,
    nights_param,
    room_filters,
)


def request(**query: str) -> Any:
    """What the parsers read of a request: `request.url.query.get`."""
    return SimpleNamespace(url=SimpleNamespace(query=query))


def ordered(*numbers: str) -> list[str]:
    return sorted(numbers, key=natural_key)


def test_numbers_sort_as_numbers() -> None:
    assert ordered("101", "99", "10", "2A", "2", "B1", "b2", "A10", "A9") == [
        "2", "2A", "10", "99", "101", "A9", "A10", "B1", "b2"]


def test_superscripts_and_other_scripts_never_break_the_order() -> None:
    # '²' is a digit to str.isdigit but not a decimal: int('²') raises; here it is text.
    assert ordered("²", "3", "\u0661\u0662", "2") == ["2", "3", "\u0661\u0662", "²"]
    assert ordered("9" * 5000, "1" + "0" * 5000, "8") == ["8", "9" * 5000, "1" + "0" * 5000]


@given(st.text())
def test_any_room_number_has_a_key(text: str) -> None:
    key = natural_key(text)
    assert key == natural_key(text)
    assert "".join(part[-1] for part in key) == text


@given(st.lists(st.text(), max_size=30))
def test_any_room_numbers_sort_and_the_order_is_total(numbers: list[str]) -> None:
    once = sorted(numbers, key=natural_key)
    assert sorted(reversed(numbers), key=natural_key) == once


@given(st.text(), st.text())
def test_keys_are_equal_only_for_equal_numbers(first: str, second: str) -> None:
    assert (natural_key(first) == natural_key(second)) == (first == second)


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=10**30),
       st.sampled_from(["", "A", "-east"]))
def test_numeric_parts_follow_their_value(a: int, b: int, suffix: str) -> None:
    if a != b:
        assert (natural_key(f"{a}{suffix}") < natural_key(f"{b}{suffix}")) == (a < b)


def room(number: str, room_id: str) -> dict[str, Any]:
    return {"hotel_id": "H", "room_id": room_id, "room_number": number, "room_type": "DBL",
            "status": "vacant_clean", "availability_date": "2026-11-23", "version": 1}


def test_the_room_listing_sorts_any_room_number() -> None:
    table = {f"H:{r['room_id']}".encode(): json.dumps(r).encode() for r in
             [room("²", "R-sq"), room("10", "R-10"), room("2", "R-2"), room("٣", "R-3"),
              room("9" * 200, "R-long")]}
    table[b"HX:R-other"] = json.dumps(room("1", "R-other")).encode()
    listed = hotel_rooms(table.items(), "H", None, None)
    assert [r["room_number"] for r in listed] == ["2", "٣", "10", "9" * 200, "²"]


# -- parameters --------------------------------------------------------------------------------


def test_dates_are_ascii_iso_days() -> None:
    nights = nights_param(request(**{"from": "2026-11-23", "to": "2026-11-25"}))
    assert nights == [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]
    arabic_indic = "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0663"
    for bad in (arabic_indic, "2026-02-30", "2026-11-23T00:00", "", "²⁰²⁶-11-23"):
        with pytest.raises(BadQuery):
            nights_param(request(**{"from": bad, "to": "2026-11-25"}))
    with pytest.raises(BadQuery, match="'to'"):
        nights_param(request(**{"from": "2026-11-25", "to": "2026-11-23"}))
    with pytest.raises(BadQuery, match="at most"):
        nights_param(request(**{"from": "2000-01-01", "to": "9999-12-31"}))


@given(st.text(), st.text())
def test_any_date_parameters_are_nights_or_a_400(first: str, last: str) -> None:
    try:
        nights = nights_param(request(**{"from": first, "to": last}))
    except BadQuery as exc:
        assert exc.status == 400
    else:
        assert 1 <= len(nights) <= MAX_NIGHTS


@given(st.text(), st.text())
def test_any_room_filters_are_filters_or_a_400(status: str, room_type: str) -> None:
    try:
        found = room_filters(request(status=status, type=room_type))
    except BadQuery as exc:
        assert exc.status == 400 and "status" in str(exc)
    else:
        assert found == (status or None, room_type or None)
