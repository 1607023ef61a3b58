"""Mirrored table values: an older state log record never puts an older state back."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streams.core.mirrored import mirror, read, state_json, states
from streams.core.state import CustomerState


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def test_a_later_record_replaces_an_earlier_one_and_not_the_other_way() -> None:
    table: dict[bytes, Any] = {}
    assert mirror(table, b"H:C1", _json({"n": 1}), 10)
    assert mirror(table, b"H:C1", _json({"n": 2}), 12)
    assert not mirror(table, b"H:C1", _json({"n": 1}), 10)  # read again after a restart
    assert not mirror(table, b"H:C1", _json({"n": 2}), 12)
    assert [(key, json.loads(raw)) for key, raw in states(table)] == [(b"H:C1", {"n": 2})]


@given(st.lists(st.tuples(st.sampled_from([b"a", b"b"]), st.integers(0, 2**40)), max_size=40))
def test_any_redelivery_order_ends_with_the_latest_record_per_key(
        records: list[tuple[bytes, int]]) -> None:
    table: dict[bytes, Any] = {}
    for key, offset in records + records[: len(records) // 2]:  # a replayed stretch
        mirror(table, key, _json({"offset_seen": offset}), offset)
    latest = {key: max(o for k, o in records if k == key) for key, _ in records}
    assert {key: json.loads(raw)["offset_seen"] for key, raw in states(table)} == latest
    assert {key: state_json(table[key])["offset_seen"] for key in table} == latest


def test_read_gives_the_model() -> None:
    table: dict[bytes, Any] = {}
    state = CustomerState(hotel_id="H", customer_id="C1", version=1)
    mirror(table, b"H:C1", state.model_dump_json().encode(), 3)
    assert read(table, b"H:C1", CustomerState) == state
    assert read(table, b"H:C2", CustomerState) is None


def test_values_an_earlier_hub_left_are_never_served_and_get_replaced() -> None:
    earlier = [{"hotel_id": "H", "customer_id": "C1", "version": 1},
               b'{"offset": 3, "state": {"hotel_id": "H"}}', b"\x01short"]
    for old in earlier:
        table: dict[bytes, Any] = {b"H:C1": old}
        assert read(table, b"H:C1", CustomerState) is None and list(states(table)) == []
        assert state_json(old) is None
        assert mirror(table, b"H:C1", _json({"n": 1}), 0)
