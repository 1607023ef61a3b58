"""Resume cursors: a round trip, and damaged cursors refused saying what is wrong."""

from __future__ import annotations

import base64
import json

import pytest
from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from streams.gateway.cursor import PREFIX, CursorError, decode_cursor, encode_cursor

TOPICS = st.from_regex(r"(test-[0-9a-f]{8}\.)?hotel\.[a-z_]{1,20}", fullmatch=True)
POSITIONS = st.dictionaries(
    st.builds(TopicPartition, TOPICS, st.integers(min_value=0, max_value=10_000)),
    st.integers(min_value=0, max_value=2**63 - 1),
    max_size=30,
)


def raw_cursor(data: object) -> str:
    return PREFIX + base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@given(POSITIONS)
def test_round_trip(positions):
    cursor = encode_cursor(positions)
    assert cursor.startswith(PREFIX)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor
    assert decode_cursor(cursor) == positions


def test_known_cursor():
    positions = {TopicPartition("hotel.room", 0): 12, TopicPartition("hotel.room", 3): 0,
                 TopicPartition("hotel.reservation", 1): 7}
    cursor = encode_cursor(positions)
    assert json.loads(base64.urlsafe_b64decode(cursor[3:] + "==")) == {
        "hotel.reservation": {"1": 7}, "hotel.room": {"0": 12, "3": 0}}
    assert decode_cursor(cursor) == positions


def test_encoding_does_not_depend_on_order():
    a, b = TopicPartition("hotel.room", 0), TopicPartition("hotel.customer", 2)
    assert encode_cursor({a: 1, b: 2}) == encode_cursor({b: 2, a: 1})


def test_wrong_prefix():
    good = encode_cursor({TopicPartition("hotel.room", 0): 1})
    with pytest.raises(CursorError, match=r"does not start with 'c1\.'"):
        decode_cursor("c2." + good[3:])
    with pytest.raises(CursorError, match=r"does not start with 'c1\.'"):
        decode_cursor("")


@pytest.mark.parametrize("body", ["!!!", "@@@@", "é", "bm90IGpzb24", "/w"])
def test_not_base64url_json(body):
    with pytest.raises(CursorError, match="not base64url JSON"):
        decode_cursor(PREFIX + body)


@pytest.mark.parametrize("data", [[1, 2], "hotel.room", 5, None])
def test_not_a_map(data):
    with pytest.raises(CursorError, match="not a map of topics"):
        decode_cursor(raw_cursor(data))


def test_topic_without_partitions():
    with pytest.raises(CursorError, match=r"topic 'hotel\.room' holds no partitions"):
        decode_cursor(raw_cursor({"hotel.room": [0, 1]}))


@pytest.mark.parametrize(("partitions", "shown"), [
    ({"0": -1}, "hotel.room[0] = -1"),
    ({"0": "5"}, "hotel.room[0] = '5'"),
    ({"0": 1.5}, "hotel.room[0] = 1.5"),
    ({"0": None}, "hotel.room[0] = None"),
    ({"0": True}, "hotel.room[0] = True"),
    ({"x": 1}, "hotel.room[x] = 1"),
    ({"-1": 1}, "hotel.room[-1] = 1"),
    ({"": 1}, "hotel.room[] = 1"),
    ({"\u00b2": 1}, "hotel.room[\u00b2] = 1"),
    ({"\u0663": 1}, "hotel.room[\u0663] = 1"),
])
def test_bad_partition_or_offset(partitions, shown):
    with pytest.raises(CursorError) as refused:
        decode_cursor(raw_cursor({"hotel.room": partitions}))
    assert "damaged" in str(refused.value)
    assert shown in str(refused.value)


@given(st.text(max_size=40))
def test_any_text_is_a_cursor_or_a_cursor_error(text):
    for candidate in (text, PREFIX + text):
        try:
            positions = decode_cursor(candidate)
        except CursorError:
            continue
        assert all(offset >= 0 and type(offset) is int for offset in positions.values())
