"""Operator commands around events: run the worker, publish, tail, and the demo day."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvloop
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from streams.core.documents import build_event, document_event_id
from streams.core.exceptions import CodecError, EventValidationError, HubError
from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, REFUSAL_TOPIC, System
from streams.core.models import HotelEvent
from streams.runners.publisher import HotelEventPublisher
from streams.settings import get_settings
from streams.wire.cloudevents import header_map
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient

console = Console(stderr=True)
KIND_BY_TOPIC = {policy.topic: kind for kind, policy in POLICIES.items()}
T = TypeVar("T")


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(publish)
    app.command()(tail)


def worker(
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug")] = "info",
) -> None:
    """Run a stream-processing worker; start more to scale out across partitions."""
    from streams.worker.run import run_worker

    guard(lambda: run_worker(get_settings().acting_as("hotel-hub"), loglevel=loglevel))


def publish(
    source: Annotated[str, typer.Argument(help="JSON file, or - for stdin")] = "-",
    system: Annotated[System, typer.Option(help="The system publishing")] = System.HOTEL_PMS,
) -> None:
    """Publish events from JSON: one object, a list, or one object per line.

    Every event is validated and encoded before the first is sent, so a file with a
    bad event sends nothing. A document without `event_id` gets one derived from its
    content, so publishing the same file again (after a timeout, say) repeats the same
    events, which the hub recognises, rather than doubling them.
    """
    settings = get_settings().acting_as(system.value)  # its own secret, unless one is set

    def validate() -> list[HotelEvent]:
        documents = _documents(_read(source))
        events: list[HotelEvent] = []
        errors: dict[str, str] = {}
        for index, document in enumerate(documents):
            if not document.get("event_id"):
                document = {**document, "event_id": document_event_id(
                    document, publisher=system, default_hotel_id=settings.default_hotel_id)}
            try:
                events.append(build_event(document, publisher=system,
                                          default_hotel_id=settings.default_hotel_id,
                                          limits=settings.limits()))
            except EventValidationError as exc:
                errors |= {f"#{index}.{path}": why for path, why in exc.errors.items()}
        if errors:
            raise EventValidationError(
                f"{len(documents)} event(s) read, none sent; invalid", errors=errors
            )
        return events

    async def run() -> None:
        events = validate()
        async with (
            SchemaRegistryClient.from_settings(settings) as registry,
            HotelEventPublisher(system=system, registry=registry, settings=settings) as publisher,
        ):
            unencodable: dict[str, str] = {}
            for index, event in enumerate(events):
                try:
                    publisher.encode(event)
                except CodecError as exc:
                    unencodable[f"#{index}"] = str(exc)
            if unencodable:
                raise EventValidationError(
                    f"{len(events)} event(s) read, none sent; not encodable", errors=unencodable
                )
            for event in events:
                published = await publisher.send(event)
                typer.echo(json.dumps({
                    "event_id": str(published.event.event_id), "topic": published.topic,
                    "partition": published.partition, "offset": published.offset,
                }))

    guard(lambda: uvloop.run(run()))  # the publisher's own loop: uvloop


def tail(
    topic: Annotated[str, typer.Argument(help="e.g. hotel.reservation, hotel.refusals")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
    max_events: Annotated[int, typer.Option(help="Stop after this many (0: never)")] = 0,
    idle_timeout_s: Annotated[float, typer.Option(help="Stop after this long idle (0: never)")] = 0,
) -> None:
    """Print a topic's events decoded, one JSON object a line (HOTELHUB_TOPIC_PREFIX applies)."""
    if topic not in KIND_BY_TOPIC and topic not in (DEADLETTER_TOPIC, REFUSAL_TOPIC):
        known = ", ".join([*KIND_BY_TOPIC, REFUSAL_TOPIC, DEADLETTER_TOPIC])
        raise typer.BadParameter(f"{topic!r} is not a hub topic ({known})")

    async def run() -> None:
        settings = get_settings().acting_as("operator")
        consumer = AIOKafkaConsumer(
            settings.topic(topic),
            bootstrap_servers=settings.bootstrap_servers,
            **settings.kafka_auth(),
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        seen = 0
        last_seen = time.monotonic()
        try:
            async with SchemaRegistryClient.from_settings(settings) as registry:
                codec = ConfluentAvroCodec(registry)
                while not max_events or seen < max_events:
                    batch = await consumer.getmany(timeout_ms=500)
                    if batch:
                        last_seen = time.monotonic()
                    elif idle_timeout_s and time.monotonic() - last_seen > idle_timeout_s:
                        return
                    for records in batch.values():
                        for record in records:
                            typer.echo(await _render(codec, topic, record))
                            seen += 1
                            if max_events and seen >= max_events:
                                return
        finally:
            await consumer.stop()

    guard(lambda: asyncio.run(run()))


async def _render(codec: ConfluentAvroCodec, topic: str, record: Any) -> str:
    position = {"topic": topic, "partition": record.partition, "offset": record.offset}
    if topic == DEADLETTER_TOPIC:
        return json.dumps({**position, "headers": header_map(record.headers),
                           "value_hex": (record.value or b"").hex()})
    try:
        if topic == REFUSAL_TOPIC:
            return (await codec.decode_refusal(record.value)).model_dump_json()
        event = await codec.decode(KIND_BY_TOPIC[topic], record.value)
    except HubError as exc:
        return json.dumps({**position, "error": str(exc)})
    return event.model_dump_json()


class InputError(HubError):
    """The events to publish cannot be read: said in one line, nothing is sent."""


def _read(source: str) -> str:
    """The text of `source` (a path, or - for stdin): UTF-8 (a BOM is fine) and not empty."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            stream = sys.stdin
            raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()
        else:
            raw = Path(source).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from None
    if not text.strip():
        raise InputError(f"{name} is empty: no events to publish")
    return text


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(f"not JSON{where}: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON{where or f' (line {exc.lineno})'}: {exc.msg}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InputError(f"not JSON{where}: {exc}") from None


def _documents(text: str) -> list[dict[str, Any]]:
    try:
        parsed = _parse(text, "")
    except InputError:
        parsed = [_parse(line, f" at line {number}")
                  for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        raise InputError("no events to publish (an empty list)")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"event #{index} is {type(item).__name__}, not an object")
    return items


def guard(action: Callable[[], T]) -> T:
    """Show hub errors as clear lines (one per bad field) and exit 2, never a traceback."""
    try:
        return action()
    except EventValidationError as exc:
        console.print(f"[red]error:[/red] {exc.args[0].split(': ')[0]}", soft_wrap=True,
                      markup=True, highlight=False)
        for path, why in exc.errors.items():
            console.print(f"  {path}: {why}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(2) from exc
    except HubError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc
