"""Webhook retry delays: the schedule, jitter, Retry-After and its parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.gateway.retries import RetryPolicy, retry_after_s
from streams.settings import HubSettings

POLICY = RetryPolicy.of(HubSettings())
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_default_policy():
    assert POLICY.attempts == 8
    assert len(POLICY.schedule_s) == 7
    total_h = sum(POLICY.schedule_s) / 3600
    assert 27 < total_h < 28
    assert POLICY.schedule_s[0] == 5
    assert 0 < POLICY.jitter < 1
    assert POLICY.retry_after_max_s == 36000


@given(attempts_made=st.integers(min_value=1, max_value=POLICY.attempts - 1),
       seed=st.integers())
def test_jitter_stays_within_bounds(attempts_made, seed):
    delay = POLICY.delay_s(attempts_made, rng=random.Random(seed))
    base = POLICY.schedule_s[attempts_made - 1]
    assert delay is not None
    assert base * (1 - POLICY.jitter) <= delay <= base * (1 + POLICY.jitter)


def test_jitter_moves_delays():
    rng = random.Random(7)
    delays = {POLICY.delay_s(3, rng=rng) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) < POLICY.schedule_s[2] < max(delays)


def test_no_jitter_gives_the_schedule():
    exact = RetryPolicy((1.0, 2.0, 3.0), jitter=0.0, retry_after_max_s=10)
    assert [exact.delay_s(n) for n in range(1, 5)] == [1.0, 2.0, 3.0, None]


@given(attempts_made=st.integers(min_value=POLICY.attempts, max_value=1000),
       retry_after=st.none() | st.floats(min_value=0, max_value=1e6))
def test_none_after_the_last_attempt(attempts_made, retry_after):
    assert POLICY.delay_s(attempts_made, retry_after) is None


def test_last_retry_is_scheduled():
    assert POLICY.delay_s(POLICY.attempts - 1) is not None
    assert POLICY.delay_s(POLICY.attempts) is None


def test_retry_after_replaces_the_delay():
    assert POLICY.delay_s(1, 120.0) == 120.0
    assert POLICY.delay_s(7, 3.0) == 3.0
    assert POLICY.delay_s(2, 0.0) == 0.0
    assert POLICY.delay_s(2, -5.0) == 0.0


def test_retry_after_is_capped():
    assert POLICY.delay_s(1, POLICY.retry_after_max_s * 10) == POLICY.retry_after_max_s
    capped = RetryPolicy((5.0,), jitter=0.0, retry_after_max_s=60)
    assert capped.delay_s(1, 3600) == 60


@pytest.mark.parametrize(("header", "seconds"), [
    ("0", 0.0), ("120", 120.0), (" 30 ", 30.0), ("86400", 86400.0)])
def test_delta_seconds(header, seconds):
    assert retry_after_s(header, NOW) == seconds


@given(st.integers(min_value=0, max_value=10**9))
def test_delta_seconds_any(seconds):
    assert retry_after_s(str(seconds)) == seconds


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_http_date(offset_s):
    header = format_datetime(NOW + timedelta(seconds=offset_s), usegmt=True)
    assert retry_after_s(header, NOW) == max(0.0, float(offset_s))


def test_http_date_without_zone_is_utc():
    assert retry_after_s("Sun, 01 Jun 2025 12:01:00 -0000", NOW) == 60.0


@pytest.mark.parametrize("header", [
    "", "soon", "-5", "1.5", "1e3", "Mon, 99 Foo 2025", "\u00b2", "\u0663", "12 s"])
def test_garbage_is_none(header):
    assert retry_after_s(header, NOW) is None


def test_none_is_none():
    assert retry_after_s(None) is None


@given(st.text(max_size=40))
def test_never_raises_never_negative(header):
    seconds = retry_after_s(header, NOW)
    assert seconds is None or seconds >= 0
