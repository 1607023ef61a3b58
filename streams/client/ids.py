"""Event ids a client can make on its own.

Ids made offline must be globally unique without asking the hub, and must sort by the time
they were made, so nothing has to be renumbered after a sync. UUIDv7 (RFC 9562) gives both:
a 48-bit Unix millisecond timestamp, then random bits. The 12 bits of `rand_a` are a counter
within one millisecond (RFC 9562, 6.2 method 1), so the ids one process makes sort in the
order it made them even when many share a millisecond.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid

_MAX_MS = (1 << 48) - 1
_COUNTER_MAX = 0xFFF
_VERSION = 0x7
_VARIANT = 0b10

_lock = threading.Lock()
_last_ms = -1
_last_asked_ms = -1
_counter = 0


def _fresh_counter() -> int:
    """A random start with the top bit clear, leaving at least 2,048 steps in the millisecond."""
    return secrets.randbits(11)


def _next(now_ms: int | None) -> tuple[int, int]:
    """The (timestamp, counter) of the next id; callers hold `_lock`."""
    global _last_ms, _last_asked_ms, _counter
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"now_ms must be within 0..{_MAX_MS}, got {ms}")
    if now_ms is not None and ms < _last_asked_ms:
        # An explicit earlier time is honoured; such an id sorts before those made already,
        # and leaves the sequence of later ids alone.
        return ms, _fresh_counter()
    _last_asked_ms = max(_last_asked_ms, ms)
    if ms > _last_ms:
        _last_ms, _counter = ms, _fresh_counter()
    elif _counter < _COUNTER_MAX:
        _counter += 1
    elif _last_ms < _MAX_MS:
        # 4,096 ids in one millisecond: borrow the next one rather than lose the order.
        _last_ms, _counter = _last_ms + 1, _fresh_counter()
    else:
        raise ValueError("no UUIDv7 is left after the last millisecond of 48 bits")
    return _last_ms, _counter


def uuid7(now_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7, later than every id this process made before at the same or an earlier time.

    `now_ms` (Unix milliseconds) replaces the clock, for tests and for replaying history.
    A clock that steps back does not break the order: the last timestamp is kept until the
    clock passes it again.
    """
    with _lock:
        ms, counter = _next(now_ms)
    rand_b = secrets.randbits(62)
    value = (ms << 80) | (_VERSION << 76) | (counter << 64) | (_VARIANT << 62) | rand_b
    return uuid.UUID(int=value)


def new_id() -> str:
    """A new event id in the hub's textual form."""
    return str(uuid7())
