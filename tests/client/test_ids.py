"""UUIDv7 ids: layout per RFC 9562, unique and in creation order within a process."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.client.ids import new_id, uuid7


def _timestamp_ms(value: uuid.UUID) -> int:
    return value.int >> 80


def _increasing(ids: Sequence[uuid.UUID]) -> bool:
    return all(a < b for a, b in pairwise(ids))


def test_version_and_variant_bits() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert (value.int >> 76) & 0xF == 0x7
    assert (value.int >> 62) & 0b11 == 0b10


def test_new_id_is_the_text_of_a_uuid7() -> None:
    text = new_id()
    assert uuid.UUID(text).version == 7
    assert str(uuid.UUID(text)) == text


def test_100k_ids_are_unique_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert _increasing(ids)
    texts = [str(value) for value in ids]
    assert texts == sorted(texts)


def test_ids_sort_in_order_within_one_millisecond() -> None:
    ms = 1_900_000_000_000
    ids = [uuid7(ms) for _ in range(2_000)]
    assert all(_timestamp_ms(value) == ms for value in ids)
    assert _increasing(ids)


def test_a_full_millisecond_borrows_the_next_one_and_keeps_the_order() -> None:
    ms = 1_950_000_000_000
    ids = [uuid7(ms) for _ in range(5_000)]
    assert _increasing(ids)
    assert {_timestamp_ms(value) for value in ids} <= {ms, ms + 1, ms + 2}


def test_threads_share_one_sequence() -> None:
    made: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def make(into: list[uuid.UUID]) -> None:
        into.extend(uuid7() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for into in made for value in into]
    assert len(set(everything)) == len(everything)
    for into in made:
        assert _increasing(into)


def test_a_clock_before_zero_or_beyond_48_bits_is_refused() -> None:
    for bad in (-1, 1 << 48):
        with pytest.raises(ValueError, match="now_ms"):
            uuid7(bad)


@given(st.integers(min_value=0, max_value=(1 << 48) - 2))
def test_timestamp_decodes_to_the_ms_given(now_ms: int) -> None:
    value = uuid7(now_ms)
    assert _timestamp_ms(value) == now_ms
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
