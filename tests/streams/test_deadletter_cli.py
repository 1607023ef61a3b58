"""`hotelhub deadletter list|replay`: selection helpers, and the commands against the real broker.

The integration tests write fake dead letters in the writer's header layout (spelled out
here, not taken from the module under test) to this session's dead-letter topic, next to
any real ones other tests leave there, so every check filters by this module's own source
topics or reason marker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from streams.cli.deadletter import app
from streams.core.kinds import DEADLETTER_TOPIC
from streams.runners.admin import ensure_topics
from streams.settings import HubSettings, get_settings
from streams.wire.deadletters import (
    HEADER_PREFIX,
    REPLAYED_FROM_HEADER,
    DeadLetter,
    Selection,
    deadletter_headers,
    one_line,
    parse_dead_letter,
    parse_instant,
    replay_headers,
    select,
)
from streams.wire.topics import TopicSpec, hub_topics

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def error_headers(
    *, topic: str | None, partition: int | None, offset: int | None, cls: str, message: str,
    at: datetime | str | None,
) -> list[tuple[str, bytes]]:
    """The layout the runners write; a field given as None is left out."""
    fields = {"topic": topic, "partition": partition, "offset": offset,
              "exception.class": cls, "exception.message": message,
              "timestamp": at.isoformat() if isinstance(at, datetime) else at}
    return [(f"hub.errors.{name}", str(value).encode())
            for name, value in fields.items() if value is not None]


def letter(offset: int = 0, *, topic: str | None = "hotel.room", cls: str = "CodecError",
           message: str = "bad magic byte", at: datetime = T0) -> DeadLetter:
    return DeadLetter(partition=0, offset=offset, time=at, source_topic=topic,
                      source_partition=0, source_offset=offset, exception_class=cls,
                      exception_message=message, key=b"k", value=b"v")


# --- the pure helpers -----------------------------------------------------------------


def test_what_the_writer_writes_parses_back() -> None:
    headers = [("ce_id", b"e1"), *deadletter_headers(
        topic="t.a", partition=3, offset=17, error=ValueError("bad magic byte"))]
    letter = parse_dead_letter(partition=0, offset=5, timestamp_ms=0, key=b"k", value=b"v",
                               headers=headers)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("t.a", 3, 17)
    assert (letter.exception_class, letter.exception_message) == ("ValueError", "bad magic byte")
    assert all(name.startswith(HEADER_PREFIX) for name, _ in headers[1:])


def test_parse_splits_original_headers_from_error_headers() -> None:
    original = [("ce_id", b"e1"), ("x", b"1"), ("x", b"2")]
    headers = [*original, *error_headers(topic="t.a", partition=3, offset=17, cls="CodecError",
                                         message="bad magic byte", at=T0)]
    parsed = parse_dead_letter(partition=0, offset=4, timestamp_ms=0, key=b"K", value=b"V",
                               headers=headers)
    assert parsed.original_headers == tuple(original)
    assert (parsed.source_topic, parsed.source_partition, parsed.source_offset) == ("t.a", 3, 17)
    assert (parsed.exception_class, parsed.exception_message) == ("CodecError", "bad magic byte")
    assert parsed.time == T0 and parsed.key == b"K" and parsed.value == b"V"
    assert parsed.replayable


def test_parse_never_fails_on_odd_headers() -> None:
    """Missing or garbled error headers still give a listable (not replayable) dead letter."""
    parsed = parse_dead_letter(
        partition=0, offset=1, timestamp_ms=1_700_000_000_000, key=None, value=None,
        headers=[("hub.errors.partition", b"two"), ("hub.errors.timestamp", b"yesterday"),
                 ("hub.errors.exception.message", b"\xff\xfe"), ("h", None)],
    )
    assert parsed.source_topic is None and not parsed.replayable
    assert parsed.source_partition is None and parsed.exception_class == "unknown"
    assert parsed.time == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert parsed.original_headers == (("h", b""),)
    assert "not replayable" in one_line(parsed)


def test_the_last_error_header_wins() -> None:
    """A replayed record that fails again carries no old error headers, but be safe anyway."""
    headers = [*error_headers(topic="old", partition=0, offset=1, cls="A", message="a", at=T0),
               *error_headers(topic="new", partition=1, offset=2, cls="B", message="b", at=T0)]
    parsed = parse_dead_letter(partition=0, offset=0, timestamp_ms=0, key=None, value=b"",
                               headers=headers)
    assert (parsed.source_topic, parsed.exception_class) == ("new", "B")


def test_replay_headers_keep_the_originals_and_name_the_dead_letter_once() -> None:
    original = (("ce_id", b"e1"), (REPLAYED_FROM_HEADER, b"dl:0:1"), ("x", b"1"), ("x", b"2"))
    dead = DeadLetter(partition=0, offset=42, time=T0, source_topic="t", source_partition=0,
                      source_offset=0, exception_class="E", exception_message="",
                      key=None, value=b"", original_headers=original)
    assert replay_headers(dead, "p.hotel.deadletter") == [
        ("ce_id", b"e1"), ("x", b"1"), ("x", b"2"),
        (REPLAYED_FROM_HEADER, b"p.hotel.deadletter:0:42"),
    ]


def test_reason_is_the_class_exactly_or_text_of_the_message() -> None:
    letters = [letter(0, cls="CodecError", message="unknown schema id 7"),
               letter(1, cls="ValueError", message="Codec said no"),
               letter(2, cls="KeyError", message="'room'")]
    def offsets(reason: str) -> list[int]:
        return [d.offset for d in select(letters, Selection(reason=reason))]

    assert offsets("CodecError") == [0]
    assert offsets("codec") == [1]  # a substring of the message, any case; not of the class
    assert offsets("SCHEMA ID") == [0]
    assert offsets("Error") == []


def test_since_is_inclusive_until_exclusive_and_topics_filter() -> None:
    letters = [letter(0, at=T0 - timedelta(seconds=1)), letter(1, at=T0),
               letter(2, at=T0, topic="hotel.customer"), letter(3, topic=None)]
    def offsets(selection: Selection) -> list[int]:
        return [d.offset for d in select(letters, selection)]

    assert offsets(Selection(since=T0)) == [1, 2, 3]
    assert offsets(Selection(until=T0)) == [0]
    assert offsets(Selection(topics=frozenset({"hotel.customer"}))) == [2]
    assert offsets(Selection()) == [0, 1, 2, 3]


def test_one_line_is_one_line() -> None:
    line = one_line(letter(7, message="first\nsecond\tthird " + "x" * 500))
    assert "\n" not in line and line.startswith("7\t2026-05-01T09:30:00+00:00\thotel.room/0/7\t")
    assert "CodecError: first second third" in line and len(line) < 300


def test_parse_instant_reads_naive_times_in_the_given_zone() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert parse_instant("2026-05-01", tokyo) == datetime(2026, 5, 1, tzinfo=tokyo)
    assert parse_instant("2026-05-01T09:30Z", tokyo) == T0
    assert parse_instant("2026-05-01T18:30", tokyo) == T0
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_instant("last tuesday", tokyo)


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12).filter(
    lambda name: not name.startswith(HEADER_PREFIX))
original_headers = st.lists(st.tuples(names, st.binary(max_size=8)), max_size=6)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC))


@given(
    original=original_headers,
    topic=st.from_regex(r"[a-z][a-z0-9._-]{0,20}", fullmatch=True),
    partition=st.integers(0, 1000), offset=st.integers(0, 2**62),
    cls=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
    message=st.text(max_size=50), at=instants, key=st.none() | st.binary(max_size=8),
    value=st.binary(max_size=16), dl_offset=st.integers(0, 2**62),
)
def test_what_the_writer_wrote_is_what_replay_sends(
    original: list[tuple[str, bytes]], topic: str, partition: int, offset: int, cls: str,
    message: str, at: datetime, key: bytes | None, value: bytes, dl_offset: int,
) -> None:
    """Parsing the writer's layout gives back every field; replay sends the original record."""
    headers = [*original, *error_headers(topic=topic, partition=partition, offset=offset,
                                         cls=cls, message=message, at=at)]
    parsed = parse_dead_letter(partition=0, offset=dl_offset, timestamp_ms=0, key=key,
                               value=value, headers=headers)
    assert (parsed.source_topic, parsed.source_partition, parsed.source_offset) == (
        topic, partition, offset)
    assert (parsed.exception_class, parsed.exception_message, parsed.time) == (cls, message, at)
    assert (parsed.key, parsed.value) == (key, value)
    sent = replay_headers(parsed, "dl")
    assert sent[:-1] == [h for h in original if h[0] != REPLAYED_FROM_HEADER]
    assert sent[-1] == (REPLAYED_FROM_HEADER, f"dl:0:{dl_offset}".encode())


letters_strategy = st.lists(
    st.builds(letter, offset=st.integers(0, 50), topic=st.sampled_from([None, "a", "b"]),
              cls=st.sampled_from(["CodecError", "ValueError"]),
              message=st.sampled_from(["", "bad magic", "Unknown schema"]), at=instants),
    max_size=20,
)


@given(letters=letters_strategy, topics=st.none() | st.frozensets(st.sampled_from(["a", "b"])),
       reason=st.none() | st.sampled_from(["CodecError", "magic", "SCHEMA", "x"]),
       since=st.none() | instants, until=st.none() | instants, split=instants)
def test_selection_is_the_intersection_of_its_criteria_and_windows_tile(
    letters: list[DeadLetter], topics: frozenset[str] | None, reason: str | None,
    since: datetime | None, until: datetime | None, split: datetime,
) -> None:
    def chosen(selection: Selection) -> list[int]:
        return [id(d) for d in select(letters, selection)]

    combined = set(chosen(Selection(topics=topics, reason=reason, since=since, until=until)))
    singles = [set(chosen(Selection(topics=topics))), set(chosen(Selection(reason=reason))),
               set(chosen(Selection(since=since))), set(chosen(Selection(until=until)))]
    assert combined == set.intersection(*singles)
    before, after = chosen(Selection(until=split)), chosen(Selection(since=split))
    assert not set(before) & set(after)
    assert sorted(before + after) == sorted(chosen(Selection()))


def test_bad_times_are_named_before_anything_connects(settings_from_env: pytest.MonkeyPatch,
                                                       ) -> None:
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, ["list", "--since", "soon"])
    assert result.exit_code == 2 and "--since" in result.output and "ISO 8601" in result.output
    result = CliRunner().invoke(app, ["replay", "--since", "2026-05-02", "--until", "2026-05-01"])
    assert result.exit_code == 2 and "--until" in result.output


def test_an_unreachable_broker_is_one_line(settings_from_env: pytest.MonkeyPatch) -> None:
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    settings_from_env.setenv("HOTELHUB_CONNECT_TIMEOUT_S", "1")
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 2 and "cannot reach Kafka" in result.output
    assert "Traceback" not in result.output


# --- against the real broker ----------------------------------------------------------




@dataclass(frozen=True)
class Written:
    """What `dead_letters` wrote: base names of its source topics, offsets by name."""

    a: str
    b: str
    gone: str
    marker: str
    dl_topic: str
    offsets: dict[str, int]
    originals: dict[str, tuple[bytes | None, bytes, list[tuple[str, bytes]], int]]
    """name -> (key, value, original headers, source partition)."""


@pytest.fixture(scope="module")
def dead_letters(hub_settings: HubSettings) -> Written:
    run = uuid.uuid4().hex[:8]
    a, b, gone = f"dl-{run}.a", f"dl-{run}.b", f"dl-{run}.gone"
    marker = f"marker-{run}"
    settings = hub_settings
    dl_topic = settings.topic(DEADLETTER_TOPIC)
    originals: dict[str, tuple[bytes | None, bytes, list[tuple[str, bytes]], int]] = {
        "codec": (b"HTL:R1", b"\x07junk-1",
                  [("ce_id", b"e1"), ("ce_type", b"hotel.reservation.created")], 0),
        "rule": (b"HTL:R2", b"\x00\x00\x00\x00\x01rest",
                 [("ce_id", b"e2"), (REPLAYED_FROM_HEADER, b"older:0:1"), ("x", b"1"),
                  ("x", b"2")], 1),
        "old": (b"HTL:R3", b"\x07old", [("ce_id", b"e3")], 1),
        "other": (None, b"\x07b", [], 0),
        "orphan": (b"HTL:R4", b"\x07orphan", [("ce_id", b"e4")], 0),
        "gone": (b"HTL:R5", b"\x07gone", [], 0),
        "aborted": (b"HTL:R6", b"\x07aborted", [("ce_id", b"e6")], 0),
    }
    errors = {
        "codec": dict(topic=settings.topic(a), offset=5, cls="CodecError",
                      message="bad magic byte 0x07", at=T0),
        "rule": dict(topic=settings.topic(a), offset=9, cls="ValueError",
                     message="Rule bug: boom", at=T0 + timedelta(minutes=1)),
        "old": dict(topic=settings.topic(a), offset=1, cls="CodecError", message="old one",
                    at=datetime(2020, 1, 1, tzinfo=UTC)),
        "other": dict(topic=settings.topic(b), offset=1, cls="CodecError",
                      message="unknown schema id 999", at=T0),
        "orphan": dict(topic=None, offset=None, cls="CodecError", message=f"{marker} orphan",
                       at=T0),
        "gone": dict(topic=settings.topic(gone), offset=3, cls="CodecError",
                     message="source topic deleted", at=T0),
        "aborted": dict(topic=settings.topic(a), offset=11, cls="CodecError",
                        message="never committed", at=T0),
    }

    async def write() -> dict[str, int]:
        specs = [spec for spec in hub_topics(settings) if spec.name == dl_topic]
        specs += [TopicSpec(settings.topic(a), 2), TopicSpec(settings.topic(b), 2)]
        await ensure_topics(settings, specs)
        offsets: dict[str, int] = {}
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                    **settings.kafka_auth(), acks="all",
                                    enable_idempotence=True)
        aborting = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                    **settings.kafka_auth(),
                                    transactional_id=f"dl-test-{run}")
        await producer.start()
        await aborting.start()
        try:
            for name, (key, value, headers, partition) in originals.items():
                error = errors[name]
                record = dict(key=key, value=value, headers=[*headers, *error_headers(
                    partition=partition if error["topic"] else None, **error)])
                if name == "aborted":  # read_committed readers must never see this one
                    await aborting.begin_transaction()
                    await (await aborting.send(dl_topic, **record))
                    await aborting.abort_transaction()
                    continue
                meta = await producer.send_and_wait(dl_topic, **record)
                offsets[name] = meta.offset
        finally:
            await producer.stop()
            await aborting.stop()
        return offsets

    offsets = asyncio.run(write())
    return Written(a=a, b=b, gone=gone, marker=marker, dl_topic=dl_topic, offsets=offsets,
                   originals=originals)


@pytest.fixture
def cli(settings_from_env: pytest.MonkeyPatch, hub_settings: HubSettings) -> CliRunner:
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", hub_settings.bootstrap_servers)
    settings_from_env.setenv("SCHEMA_REGISTRY_URL", hub_settings.registry_url)
    return CliRunner()


def listed(cli: CliRunner, *args: str) -> list[dict[str, object]]:
    result = cli.invoke(app, ["list", "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def received(settings: HubSettings, topic: str) -> list[tuple[int, bytes | None, bytes | None,
                                                         list[tuple[str, bytes]]]]:
    """Everything committed on `topic`: (partition, key, value, headers), by partition."""

    async def read() -> list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                    **settings.kafka_auth(),
                                    isolation_level="read_committed", enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(2)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out = []
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out += [(r.partition, r.key, r.value, list(r.headers)) for r in records]
            return sorted(out, key=lambda r: r[0])
        finally:
            await consumer.stop()

    return asyncio.run(read())


@pytest.mark.integration
def test_list_filters_by_topic_reason_and_time(cli: CliRunner, dead_letters: Written) -> None:
    w = dead_letters
    by_topic = listed(cli, "--topic", w.a)  # not the aborted one: read_committed
    assert [d["offset"] for d in by_topic] == [w.offsets[n] for n in ("codec", "rule", "old")]
    codec = by_topic[0]
    assert codec["source_partition"] == 0 and codec["source_offset"] == 5
    assert codec["headers"] == {"ce_id": "e1", "ce_type": "hotel.reservation.created"}
    assert codec["time"] == T0.isoformat() and codec["replayable"] is True

    assert [d["offset"] for d in listed(cli, "--topic", w.a, "--reason", "CodecError")] == [
        w.offsets["codec"], w.offsets["old"]]
    assert [d["offset"] for d in listed(cli, "--topic", w.a, "--reason", "RULE BUG")] == [
        w.offsets["rule"]]
    # Naive times are Tokyo time (the default HOTELHUB_TIMEZONE): 18:30 there is T0.
    recent = listed(cli, "--topic", w.a, "--since", "2026-05-01T18:30")
    assert [d["offset"] for d in recent] == [w.offsets["codec"], w.offsets["rule"]]
    window = listed(cli, "--topic", w.a, "--since", "2026-05-01T09:30Z",
                    "--until", "2026-05-01T09:31Z")
    assert [d["offset"] for d in window] == [w.offsets["codec"]]
    assert [d["offset"] for d in listed(cli, "--topic", w.a, "--until", "2021-01-01")] == [
        w.offsets["old"]]
    # The full (prefixed) topic name works as well.
    assert [d["offset"] for d in listed(cli, "--topic", get_settings().topic(w.b))] == [
        w.offsets["other"]]


@pytest.mark.integration
def test_plain_list_says_which_cannot_be_replayed(cli: CliRunner, dead_letters: Written) -> None:
    result = cli.invoke(app, ["list", "--reason", dead_letters.marker])
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{dead_letters.offsets['orphan']}\t2026-05-01T09:30:00+00:00\t")
    assert "no source topic: not replayable" in line and "orphan" in line
    assert "1 of " in result.stderr and "not replayable" in result.stderr


@pytest.mark.integration
def test_replay_sends_exactly_the_originals_back(cli: CliRunner, dead_letters: Written,
                                                 hub_settings: HubSettings) -> None:
    w = dead_letters
    source = hub_settings.topic(w.a)
    since = ["--topic", w.a, "--since", "2026-01-01T00:00Z"]

    dry = cli.invoke(app, ["replay", "--dry-run", *since])
    assert dry.exit_code == 0, dry.output
    assert "would replay 2 of 2 selected dead letter(s) (dry run: nothing sent)" in dry.stdout
    assert received(hub_settings, source) == []

    expected = []
    for name in ("codec", "rule"):
        key, value, headers, partition = w.originals[name]
        kept = [h for h in headers if h[0] != REPLAYED_FROM_HEADER]
        origin = f"{w.dl_topic}:0:{w.offsets[name]}".encode()
        expected.append((partition, key, value, [*kept, (REPLAYED_FROM_HEADER, origin)]))

    done = cli.invoke(app, ["replay", *since])
    assert done.exit_code == 0, done.output
    assert "replayed 2 of 2 selected dead letter(s)." in done.stdout
    assert f"replayed {w.offsets['codec']} -> {source}/0@" in done.stdout
    assert received(hub_settings, source) == expected

    # A second replay sends the very same records again (the hub's event ids dedupe them).
    again = cli.invoke(app, ["replay", *since])
    assert again.exit_code == 0, again.output
    assert received(hub_settings, source) == sorted(expected * 2, key=lambda r: r[0])
    assert received(hub_settings, hub_settings.topic(w.b)) == []


@pytest.mark.integration
def test_replay_names_what_it_could_not_send(cli: CliRunner, dead_letters: Written) -> None:
    w = dead_letters
    orphan = cli.invoke(app, ["replay", "--reason", w.marker])
    assert orphan.exit_code == 1
    assert f"dead letter {w.offsets['orphan']}: no source topic header" in orphan.stderr
    assert "replayed 0 of 1 selected dead letter(s), 1 not replayed." in orphan.stdout

    gone = cli.invoke(app, ["replay", "--topic", w.gone, "--dry-run"])
    assert gone.exit_code == 1
    assert f"source topic {get_settings().topic(w.gone)} does not exist" in gone.stderr
    assert "would replay 0 of 1" in gone.stdout

    nothing = cli.invoke(app, ["replay", "--topic", w.a, "--until", "2000-01-01"])
    assert nothing.exit_code == 0 and "replayed 0 of 0" in nothing.stdout
