"""When a failed webhook is tried again: a schedule, jitter, and the receiver's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from streams.settings import HubSettings

RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    schedule_s: tuple[float, ...]
    """Delay before retry n (n = 1..), after the immediate first attempt."""
    jitter: float
    retry_after_max_s: float

    @classmethod
    def of(cls, settings: HubSettings) -> RetryPolicy:
        return cls(tuple(settings.webhook_retry_schedule_s), settings.webhook_retry_jitter,
                   settings.webhook_retry_after_max_s)

    @property
    def attempts(self) -> int:
        return 1 + len(self.schedule_s)

    def delay_s(self, attempts_made: int, retry_after_s: float | None = None,
                rng: random.Random | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when none is left.

        A receiver's Retry-After (on 429 or 503) replaces the scheduled delay, cut to
        `retry_after_max_s`; otherwise the scheduled delay moves by up to +-`jitter` of it.
        """
        if attempts_made >= self.attempts:
            return None
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.retry_after_max_s)
        base = self.schedule_s[attempts_made - 1]
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
