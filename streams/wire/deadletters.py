"""Dead letters: the headers that say where a record came from and why it failed, written
and read back here; selecting them and rebuilding the original record for a replay.

Pure functions, no Kafka client and no Faust, so the hotel processor, the idempotent
runner (`streams.runners.idempotent`) and `hotelhub deadletter` share one layout: the
original record's headers first, then `hub.errors.topic`, `.partition`, `.offset`,
`.exception.class`, `.exception.message`, `.timestamp` (named like Kafka Connect's
`__connect.errors.*`); key and value are the original bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from streams.settings import redacted_url

HEADER_PREFIX = "hub.errors."

TOPIC_HEADER = HEADER_PREFIX + "topic"
PARTITION_HEADER = HEADER_PREFIX + "partition"
OFFSET_HEADER = HEADER_PREFIX + "offset"
CLASS_HEADER = HEADER_PREFIX + "exception.class"
MESSAGE_HEADER = HEADER_PREFIX + "exception.message"
TIMESTAMP_HEADER = HEADER_PREFIX + "timestamp"

REPLAYED_FROM_HEADER = "hub.replayed-from"
"""Added to a replayed record: `<dead-letter topic>:<partition>:<offset>` it came from."""

Headers = Sequence[tuple[str, bytes]]


def deadletter_headers(
    *, topic: str, partition: int, offset: int, error: BaseException
) -> list[tuple[str, bytes]]:
    """The headers a dead letter carries besides its original ones."""
    fields = {
        TOPIC_HEADER: topic,
        PARTITION_HEADER: str(partition),
        OFFSET_HEADER: str(offset),
        CLASS_HEADER: type(error).__name__,
        MESSAGE_HEADER: redacted_url(str(error))[:4000],  # no registry credentials
        TIMESTAMP_HEADER: datetime.now(UTC).isoformat(),
    }
    return [(name, value.encode()) for name, value in fields.items()]


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic, with where it came from and why it failed."""

    partition: int
    offset: int
    time: datetime
    """When it was dead-lettered (its `timestamp` header, else the record's own timestamp)."""
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    exception_class: str
    exception_message: str
    key: bytes | None
    value: bytes | None
    original_headers: tuple[tuple[str, bytes], ...] = field(default=())
    """The failed record's own headers, in order, without any `hub.errors.*`."""

    @property
    def replayable(self) -> bool:
        """Without a source topic there is nowhere to send it back to."""
        return bool(self.source_topic)

    @property
    def reason(self) -> str:
        if self.exception_message:
            return f"{self.exception_class}: {self.exception_message}"
        return self.exception_class


def _text(value: bytes | None) -> str:
    return (value or b"").decode(errors="replace")


def _int(value: bytes | None) -> int | None:
    try:
        return int(_text(value))
    except ValueError:
        return None


def _aware(moment: datetime, default_tz: tzinfo) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=default_tz)


def parse_dead_letter(
    *, partition: int, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None,
    headers: Iterable[tuple[str, bytes | None]] | None,
) -> DeadLetter:
    """Split a dead-letter record into the original record and the error headers.

    Never raises: a dead letter with odd or missing headers is still listed, so
    nothing on the topic is hidden from the operator. When an error header repeats,
    the last one wins (the dead-lettering appends its own after the original's).
    """
    original: list[tuple[str, bytes]] = []
    errors: dict[str, bytes | None] = {}
    for name, raw in headers or ():
        if name.startswith(HEADER_PREFIX):
            errors[name] = raw
        else:
            original.append((name, raw if raw is not None else b""))
    time = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    stamped = errors.get(TIMESTAMP_HEADER)
    if stamped:
        with contextlib.suppress(ValueError):  # unreadable: keep the record's timestamp
            time = _aware(datetime.fromisoformat(_text(stamped)), UTC)
    return DeadLetter(
        partition=partition,
        offset=offset,
        time=time,
        source_topic=_text(errors.get(TOPIC_HEADER)) or None,
        source_partition=_int(errors.get(PARTITION_HEADER)),
        source_offset=_int(errors.get(OFFSET_HEADER)),
        exception_class=_text(errors.get(CLASS_HEADER)) or "unknown",
        exception_message=_text(errors.get(MESSAGE_HEADER)),
        key=key,
        value=value,
        original_headers=tuple(original),
    )


def parse_instant(text: str, default_tz: tzinfo) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is read in `default_tz`."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-05-01 or 2026-05-01T09:30+09:00)"
        ) from exc
    return _aware(moment, default_tz)


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operator means; every criterion left `None` matches all.

    `topics`: accepted source topic names (the CLI passes both `hotel.room` and its
    prefixed name). `reason`: the exception class exactly, or a case-insensitive
    substring of the message. `since` is inclusive and `until` exclusive, so adjacent
    windows never select one dead letter twice.
    """

    topics: frozenset[str] | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.topics is not None and letter.source_topic not in self.topics:
            return False
        if self.reason is not None and not (
            letter.exception_class == self.reason
            or self.reason.casefold() in letter.exception_message.casefold()
        ):
            return False
        if self.since is not None and letter.time < self.since:
            return False
        return self.until is None or letter.time < self.until


def select(letters: Iterable[DeadLetter], selection: Selection) -> list[DeadLetter]:
    """The matching dead letters, in the order they were read."""
    return [letter for letter in letters if selection.matches(letter)]


def replay_headers(letter: DeadLetter, deadletter_topic: str) -> list[tuple[str, bytes]]:
    """The original headers in order, plus one `hub.replayed-from` naming this dead letter.

    A `hub.replayed-from` of an earlier replay is replaced, so the record names the
    dead letter it was last replayed from, once.
    """
    kept = [(name, value) for name, value in letter.original_headers
            if name != REPLAYED_FROM_HEADER and not name.startswith(HEADER_PREFIX)]
    origin = f"{deadletter_topic}:{letter.partition}:{letter.offset}"
    return [*kept, (REPLAYED_FROM_HEADER, origin.encode())]


def as_json(letter: DeadLetter) -> dict[str, object]:
    """One dead letter as a JSON-ready dict for `hotelhub deadletter list --json`."""
    return {
        "partition": letter.partition,
        "offset": letter.offset,
        "time": letter.time.isoformat(),
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "exception_class": letter.exception_class,
        "exception_message": letter.exception_message,
        "replayable": letter.replayable,
        "key": None if letter.key is None else _text(letter.key),
        "value_bytes": len(letter.value or b""),
        "headers": header_text(letter.original_headers),
    }


def header_text(headers: Headers) -> dict[str, str]:
    """Headers as text for humans and JSON (undecodable bytes replaced)."""
    return {name: _text(value) for name, value in headers}


def one_line(letter: DeadLetter, *, width: int = 160) -> str:
    """`offset  time  topic/partition/offset  reason`, the reason cut to one short line."""
    source = (
        f"{letter.source_topic}/{_or_dash(letter.source_partition)}/"
        f"{_or_dash(letter.source_offset)}"
        if letter.source_topic else "-/-/- (no source topic: not replayable)"
    )
    reason = " ".join(letter.reason.split())
    if len(reason) > width:
        reason = reason[: width - 1] + "…"
    return f"{letter.offset}\t{letter.time.isoformat()}\t{source}\t{reason}"


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)
