"""Subscription patterns: what they match, and the patterns refused with a message naming them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core.kinds import EventKind
from streams.gateway.patterns import (
    KNOWN_FIRST,
    MAX_PATTERNS,
    PatternError,
    Patterns,
    parse_pattern,
    short_type,
)

KINDS = sorted(KNOWN_FIRST)
ACTIONS = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


def test_short_type_drops_only_the_hotel_prefix():
    assert short_type("hotel.reservation.created") == "reservation.created"
    assert short_type("reservation.created") == "reservation.created"
    assert short_type("hotelier.reservation.created") == "hotelier.reservation.created"


def test_star_matches_everything():
    every = Patterns(["*"])
    for ce_type in ("hotel.reservation.created", "hotel.room.blocked", "hotel.refusal.x",
                    "hotel.unknown.thing", "anything"):
        assert every.matches(ce_type)


def test_kind_star_matches_that_kind_only():
    reservations = Patterns(["reservation.*"])
    assert reservations.matches("hotel.reservation.created")
    assert reservations.matches("hotel.reservation.cancelled")
    assert not reservations.matches("hotel.customer.created")
    assert not reservations.matches("hotel.room.reservation")


def test_exact_type():
    updated = Patterns(["customer.updated"])
    assert updated.matches("hotel.customer.updated")
    assert not updated.matches("hotel.customer.created")
    assert not updated.matches("hotel.reservation.updated")


def test_star_action_segment():
    created = Patterns(["*.created"])
    assert created.matches("hotel.room.created")
    assert created.matches("hotel.customer.created")
    assert not created.matches("hotel.customer.updated")


def test_hotel_prefix_accepted_in_patterns():
    assert parse_pattern("hotel.reservation.*") == ("reservation", "*")
    prefixed = Patterns(["hotel.customer.updated"])
    assert prefixed.matches("hotel.customer.updated")
    assert not prefixed.matches("hotel.customer.created")


def test_refusal_patterns():
    refusals = Patterns(["refusal.*"])
    assert refusals.matches("hotel.refusal.overbooked")
    assert not refusals.matches("hotel.reservation.created")
    assert Patterns(["refusal.overbooked"]).matches("hotel.refusal.overbooked")
    assert not Patterns(["refusal.overbooked"]).matches("hotel.refusal.closed")


def test_several_patterns_match_any():
    both = Patterns(["customer.updated", "room.*"])
    assert both.matches("hotel.customer.updated")
    assert both.matches("hotel.room.blocked")
    assert not both.matches("hotel.customer.created")
    assert both.texts == ("customer.updated", "room.*")


def test_duplicates_collapse():
    assert Patterns(["room.*", "room.*"]).texts == ("room.*",)


@pytest.mark.parametrize("pattern", ["reservation", "a.b.c", "unknownkind.*", "Reservation.*",
                                     "reservation.", ".created", "reservation.Created",
                                     "reservation.**", "", "hotel.a.b.c"])
def test_bad_patterns_are_refused_naming_them(pattern):
    with pytest.raises(PatternError) as refused:
        Patterns([pattern])
    assert repr(pattern) in str(refused.value)


def test_unknown_kind_message_lists_kinds():
    with pytest.raises(PatternError, match="names no known kind") as refused:
        parse_pattern("unknownkind.*")
    assert "reservation" in str(refused.value)


def test_empty_list_refused():
    with pytest.raises(PatternError, match="at least one pattern"):
        Patterns([])


def test_too_many_patterns_refused():
    many = [f"reservation.a{i}" for i in range(MAX_PATTERNS + 1)]
    with pytest.raises(PatternError, match=f"{MAX_PATTERNS + 1} patterns"):
        Patterns(many)
    assert len(Patterns(many[:MAX_PATTERNS]).texts) == MAX_PATTERNS


def test_one_bad_pattern_among_good_ones_names_it():
    with pytest.raises(PatternError, match=r"'nope\.x'"):
        Patterns(["reservation.*", "nope.x"])


def test_known_kinds_are_the_event_kinds_and_refusal():
    assert set(KNOWN_FIRST) == {kind.value for kind in EventKind} | {"refusal"}


@given(kind=st.sampled_from(KINDS), other=st.sampled_from(KINDS), action=ACTIONS)
def test_kind_pattern_matches_exactly_its_kind(kind, other, action):
    ce_type = f"hotel.{other}.{action}"
    assert Patterns(["*"]).matches(ce_type)
    assert Patterns([f"{kind}.*"]).matches(ce_type) == (kind == other)
    assert Patterns([f"{kind}.{action}"]).matches(ce_type) == (kind == other)


@given(kind=st.text(min_size=1, max_size=20), action=st.text(max_size=20))
def test_star_matches_any_type_and_kind_star_any_action(kind, action):
    ce_type = f"hotel.{kind}.{action}"
    assert Patterns(["*"]).matches(ce_type)
    for known in KINDS:
        assert Patterns([f"{known}.*"]).matches(ce_type) == (kind == known)
