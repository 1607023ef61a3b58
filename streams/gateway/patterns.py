"""Subscription patterns of the design: `reservation.*`, `customer.updated`, `*`.

A pattern names event types `<kind>.<action>` (the CloudEvents type without its `hotel.`
prefix, which a pattern may carry too); refusals are `refusal.<reason_code>`. `*` stands for
one whole segment, and `*` alone for everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from streams.core.kinds import TYPE_PREFIX, EventKind

REFUSAL = "refusal"
KNOWN_FIRST = frozenset({*(kind.value for kind in EventKind), REFUSAL})
_SEGMENT = re.compile(r"^(\*|[a-z][a-z0-9_]*)$")
MAX_PATTERNS = 64


class PatternError(ValueError):
    """A pattern that can never match, or is not a pattern; the message names it."""


def short_type(ce_type: str) -> str:
    """`hotel.reservation.created` -> `reservation.created`."""
    prefix = TYPE_PREFIX + "."
    return ce_type[len(prefix):] if ce_type.startswith(prefix) else ce_type


def parse_pattern(pattern: str) -> tuple[str, ...]:
    text = short_type(pattern.strip())
    if text == "*":
        return ("*",)
    segments = tuple(text.split("."))
    if len(segments) != 2 or not all(_SEGMENT.match(part) for part in segments):
        raise PatternError(
            f"pattern {pattern!r} is not '<kind>.<action>' with '*' for a whole segment "
            "(e.g. 'reservation.*', 'customer.updated', '*')")
    if segments[0] != "*" and segments[0] not in KNOWN_FIRST:
        raise PatternError(
            f"pattern {pattern!r} names no known kind; kinds are "
            f"{', '.join(sorted(KNOWN_FIRST))}")
    return segments


class Patterns:
    """A subscription's patterns, checked once; `matches` is called per event."""

    def __init__(self, patterns: Iterable[str]) -> None:
        texts = list(dict.fromkeys(patterns))
        if not texts:
            raise PatternError("at least one pattern is needed ('*' for every event)")
        if len(texts) > MAX_PATTERNS:
            raise PatternError(f"{len(texts)} patterns; at most {MAX_PATTERNS}")
        self.texts = tuple(texts)
        self._parsed = tuple(parse_pattern(text) for text in texts)
        self._everything = ("*",) in self._parsed
        self._cache: dict[str, bool] = {}

    def matches(self, ce_type: str) -> bool:
        found = self._cache.get(ce_type)
        if found is None:
            found = self._everything or self._match(short_type(ce_type))
            if len(self._cache) < 4096:
                self._cache[ce_type] = found
        return found

    def _match(self, type_: str) -> bool:
        kind, _, action = type_.partition(".")
        return any(p[0] in ("*", kind) and p[1] in ("*", action)
                   for p in self._parsed if len(p) == 2)

    def __repr__(self) -> str:
        return f"Patterns({list(self.texts)!r})"
