"""`hotelhub deadletter list / replay`: look at dead letters and send them back through the hub.

Both commands read the dead-letter topic `read_committed` from its beginning up to the end
offsets seen at start, so they end by themselves while workers keep writing. A replayed
record is the original key, value and headers, produced again to its source topic (and
partition) by an idempotent acks=all producer, so the worker applies the hub's rules to it
as to any event; the hub recognises an event it already applied, so replaying twice
changes nothing. Selection and header handling live in `streams.wire.deadletters`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from rich.console import Console

from streams.core.exceptions import BrokerUnavailable, HubError
from streams.core.kinds import DEADLETTER_TOPIC
from streams.runners.admin import partition_counts
from streams.runners.dead_letters import read_hub_dead_letters
from streams.settings import HubSettings, get_settings
from streams.wire.deadletters import (
    DeadLetter,
    Selection,
    as_json,
    one_line,
    parse_instant,
    replay_headers,
    select,
)

app = typer.Typer(
    no_args_is_help=True, add_completion=False,
    help="Dead letters: list them, and replay them through the hub's rules.",
)
_err = Console(stderr=True, soft_wrap=True, highlight=False)
T = TypeVar("T")

ERROR_EXIT = 2
"""The command could not do its job (broker, topic, bad option): as `hotelhub publish`."""
INCOMPLETE_EXIT = 1
"""`replay` left some selected dead letters unreplayed (no source topic, send failed)."""

TopicOption = Annotated[str | None, typer.Option(
    "--topic", help="Source topic, e.g. hotel.reservation (prefix optional).")]
ReasonOption = Annotated[str | None, typer.Option(
    "--reason", help="Exception class (exact), or text found in the exception message.")]
SinceOption = Annotated[str | None, typer.Option(
    "--since", help="Dead-lettered at or after this ISO time (no offset: HOTELHUB_TIMEZONE).")]
UntilOption = Annotated[str | None, typer.Option(
    "--until", help="Dead-lettered before this ISO time (no offset: HOTELHUB_TIMEZONE).")]
TimeoutOption = Annotated[float, typer.Option(
    "--timeout-s", help="Give up when reading makes no progress for this long.")]


@app.command("list")
def list_(
    topic: TopicOption = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json_lines: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    timeout_s: TimeoutOption = 30.0,
) -> None:
    """One line per dead letter: offset, time, source topic/partition/offset, reason."""
    settings = get_settings().acting_as("operator")
    selection = _selection(settings, topic=topic, reason=reason, since=since, until=until)
    letters = _run(read_hub_dead_letters(settings, stall_s=timeout_s))
    chosen = select(letters, selection)
    for letter in chosen:
        typer.echo(json.dumps(as_json(letter)) if as_json_lines else one_line(letter))
    unreplayable = sum(not letter.replayable for letter in chosen)
    note = f"; {unreplayable} without a source topic (not replayable)" if unreplayable else ""
    _err.print(f"{len(chosen)} of {len(letters)} dead letter(s) selected{note}.")


@app.command()
def replay(
    topic: TopicOption = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be sent.")] = False,
    timeout_s: TimeoutOption = 30.0,
) -> None:
    """Send each selected dead letter back to its source topic, through the hub's rules.

    Exits 1 when a selected dead letter was not replayed (each is named), 2 on errors.
    """
    settings = get_settings().acting_as("operator")
    selection = _selection(settings, topic=topic, reason=reason, since=since, until=until)
    outcome = _run(_replay(settings, selection, dry_run=dry_run, stall_s=timeout_s))
    verb = "would replay" if dry_run else "replayed"
    tail = " (dry run: nothing sent)" if dry_run else ""
    left = outcome.selected - outcome.replayed
    typer.echo(f"{verb} {outcome.replayed} of {outcome.selected} selected dead letter(s)"
               f"{f', {left} not replayed' if left else ''}{tail}.")
    if left:
        raise typer.Exit(INCOMPLETE_EXIT)


def _selection(
    settings: HubSettings, *, topic: str | None, reason: str | None, since: str | None,
    until: str | None,
) -> Selection:
    """Options as a `Selection`; a naive time is the hotel's local time (HOTELHUB_TIMEZONE)."""
    zone = ZoneInfo(settings.timezone)

    def instant(text: str | None, hint: str) -> datetime | None:
        if text is None:
            return None
        try:
            return parse_instant(text, zone)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=hint) from exc

    start, end = instant(since, "--since"), instant(until, "--until")
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter("must be later than --since", param_hint="--until")
    return Selection(
        topics=None if topic is None else frozenset({topic, settings.topic(topic)}),
        reason=reason or None,
        since=start,
        until=end,
    )


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's async part; hub errors become one line and exit 2, no traceback."""
    try:
        return asyncio.run(work)
    except HubError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(ERROR_EXIT) from exc


def _unreachable(settings: HubSettings, exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}")


@dataclass(frozen=True)
class ReplayOutcome:
    selected: int
    replayed: int


def _target_partition(letter: DeadLetter, counts: dict[str, int]) -> int | None:
    """The record's own partition, so it stays in order with its entity's other records;
    `None` (the producer partitions by key) when that partition is unknown or gone."""
    count = counts.get(letter.source_topic or "", 0)
    partition = letter.source_partition
    return partition if partition is not None and 0 <= partition < count else None


async def _replay(
    settings: HubSettings, selection: Selection, *, dry_run: bool, stall_s: float
) -> ReplayOutcome:
    deadletter_topic = settings.topic(DEADLETTER_TOPIC)
    chosen = select(await read_hub_dead_letters(settings, stall_s=stall_s), selection)
    sources = {letter.source_topic for letter in chosen if letter.source_topic}
    counts = await partition_counts(settings, sources) if sources else {}
    ready: list[DeadLetter] = []
    for letter in chosen:
        if not letter.replayable:
            _err.print(f"dead letter {letter.offset}: no source topic header, not replayable")
        elif letter.source_topic not in counts:
            _err.print(f"dead letter {letter.offset}: source topic {letter.source_topic} "
                       "does not exist, not replayed")
        else:
            ready.append(letter)
    if dry_run:
        for letter in ready:
            typer.echo(_describe(letter, _target_partition(letter, counts), "would replay"))
        return ReplayOutcome(selected=len(chosen), replayed=len(ready))
    if not ready:
        return ReplayOutcome(selected=len(chosen), replayed=0)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        **settings.kafka_auth(),
        client_id="hotelhub-deadletter-replay",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(settings.publish_timeout_s * 1000),
    )
    try:
        await producer.start()
    except KafkaConnectionError as exc:
        await producer.stop()
        raise _unreachable(settings, exc) from exc
    replayed = 0
    try:
        sent: list[tuple[DeadLetter, asyncio.Future[Any]]] = []
        for letter in ready:
            assert letter.source_topic is not None  # ready letters are replayable
            try:
                future = await producer.send(
                    letter.source_topic, key=letter.key, value=letter.value,
                    partition=_target_partition(letter, counts),
                    headers=replay_headers(letter, deadletter_topic),
                )
            except KafkaError as exc:  # e.g. too large for the broker: say so, go on
                _err.print(f"dead letter {letter.offset}: not replayed, {exc!r}")
                continue
            sent.append((letter, future))
        for letter, future in sent:
            try:
                meta = await future
            except KafkaError as exc:
                _err.print(f"dead letter {letter.offset}: not replayed, the broker said {exc!r}")
                continue
            replayed += 1
            typer.echo(f"replayed {letter.offset} -> {meta.topic}/{meta.partition}@{meta.offset}")
    finally:
        await producer.stop()
    return ReplayOutcome(selected=len(chosen), replayed=replayed)


def _describe(letter: DeadLetter, partition: int | None, verb: str) -> str:
    where = "by key" if partition is None else str(partition)
    return f"{verb} {letter.offset} -> {letter.source_topic}/{where} ({letter.reason[:80]})"
