"""Four fixes to faust-streaming and aiokafka, installed by `install()` before the app is built.

Nothing is patched at import. `install()` first checks that the installed faust-streaming and
aiokafka are exactly the versions these fixes were written against, and that every name they
replace or read is still there with the signature they expect; if not it raises
`PatchMismatch` naming the package, its version and the name, and patches nothing. A new
release must be read again (is the bug fixed upstream? does the fix still fit?) before the
versions below are moved. The README ("Faust and aiokafka patches") reports each bug.

1. Restoring tables under exactly_once (`_broker_highwaters`).
2. Reading read_committed under at_least_once too, and waiting at most
   `FETCH_MAX_WAIT_MS` for a fetch instead of Faust's fixed 1.5 s (`_worker_consumer`).
3. Committing past transaction markers (`_fetch_records_noting_positions`,
   `_new_offset_past_markers`).
4. Offset gaps that end before the record after them (`_gap_before_record`), so a commit
   moves past every gap at once.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

WRITTEN_FOR = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}
"""The exact versions the fixes were read against."""

_installed = False
_install_lock = threading.Lock()


class PatchMismatch(RuntimeError):
    """The installed Faust or aiokafka is not what the patches were written for."""


# --- 1. highwaters from the broker ---------------------------------------------------------

async def _broker_highwaters(self: Any, partitions: Iterable[Any]) -> Mapping[Any, int]:
    """Ask the broker (`end_offsets`; under read_committed the last stable offset).

    Under exactly_once Faust answers from aiokafka's `last_stable_offset`, known only once
    the partition has been fetched: a worker that just started reads every changelog
    highwater as -1, restores nothing and serves empty tables.
    """
    consumer = self._ensure_consumer()
    offsets: Mapping[Any, int] = await consumer.end_offsets(list(partitions))
    return offsets


# --- 2. read_committed whatever the guarantee ----------------------------------------------

FETCH_MAX_WAIT_MS = 50
"""How long the broker may hold a fetch of the worker's consumer when no record is ready.

Faust builds its worker consumer with `fetch_max_wait_ms=1500` and no setting changes it. A
transaction's commit does not answer a read_committed fetch already waiting, so every state
log record waited out most of that 1.5 s before the mirror saw it (bench.latency: the
largest single stage, p50 1.0-1.7 s). When records are ready a fetch answers at once
whatever this is, so a backlog reads as fast; an idle worker sends a fetch per 50 ms."""


def _worker_consumer(create: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    @functools.wraps(create)  # `check` reads the source of what it wraps
    def _read_committed_consumer(self: Any, transport: Any) -> Any:
        """Faust reads read_committed only under its own exactly_once; our agents consume
        what the hotel processor writes in transactions (room events, the state log), and
        an aborted transaction's records must never reach them."""
        consumer = create(self, transport)
        # Both are read by AIOKafkaConsumer.start(), which has not run yet.
        consumer._isolation_level = "read_committed"
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    return _read_committed_consumer


# --- 3. commit past transaction markers ----------------------------------------------------

@dataclass(frozen=True)
class Fetched:
    """What one fetch of a partition told: the last record handed to Faust, and the
    consumer's position just after. No committed record lies in [`last` + 1, `position`):
    aiokafka only moves past transaction markers and aborted batches without handing out a
    record, and that stays true of the log."""

    last: int
    position: int
    state: Any
    """aiokafka's TopicPartitionState of the assignment it was seen in."""


FETCHED_ATTRIBUTE = "_hotelhub_fetched"
"""Where the consumer thread leaves, per partition, the last `Fetched` (on Faust's Consumer)."""


def _tp_state(aiokafka_consumer: Any, tp: Any) -> Any:
    """aiokafka's state of `tp` when it has a position, else None (read, never awaited)."""
    subscription = aiokafka_consumer._subscription.subscription
    if subscription is None or subscription.assignment is None:
        return None
    state = subscription.assignment.state_value(tp)
    if state is None or not state.has_valid_position:
        return None
    return state


def _noting_positions(fetch: Callable[..., Any]) -> Callable[..., Any]:
    async def _fetch_records_noting_positions(
        self: Any, consumer: Any, active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109  (Faust's own signature)
        max_records: int | None = None,
    ) -> Any:
        """Faust's fetch, then (with no await in between, in the consumer's own thread)
        each partition's last handed record and position, for `_new_offset_past_markers`."""
        fetched: dict[Any, Fetched] = self.consumer.__dict__.setdefault(FETCHED_ATTRIBUTE, {})
        before = {}
        for tp in consumer.assignment():
            state = _tp_state(consumer, tp)
            if state is not None:
                before[tp] = (state, state.position)
        records = await fetch(self, consumer, active_partitions, timeout=timeout,
                              max_records=max_records)
        for tp in consumer.assignment():
            state = _tp_state(consumer, tp)
            if state is None:
                continue
            handed = records.get(tp) if records else None
            if handed:
                fetched[tp] = Fetched(handed[-1].offset, state.position, state)
                continue
            known = fetched.get(tp)
            # Nothing handed, yet the position may have moved past a marker that came in a
            # fetch of its own. Only trusted when the position moved from where the last
            # fetch left it, in the same assignment (no seek in between).
            if (known is not None and known.state is state and before.get(tp) == (
                    state, known.position) and state.position > known.position):
                fetched[tp] = Fetched(known.last, state.position, state)
        return records

    return _fetch_records_noting_positions


def _past_markers(new_offset: Callable[[Any, Any], int | None]
                  ) -> Callable[[Any, Any], int | None]:
    def _new_offset_past_markers(self: Any, tp: Any) -> int | None:
        """Faust's offset to commit, moved on to the consumer's position when every record
        fetched of `tp` is acknowledged.

        Faust commits last acknowledged offset + 1. On a topic written in transactions the
        last offset is a commit marker no message acknowledges, so the committed offset
        stays one short of the end and the group's lag reads 1 for ever. The consumer's
        position (read_committed) is past the marker.
        """
        offset = new_offset(self, tp)
        # None with nothing acknowledged: all is committed, but a marker may have come on
        # its own since. (None with acknowledged records: they wait behind a gap.)
        done = offset if offset is not None or self._acked[tp] else self._committed_offset[tp]
        fetched: Fetched | None = self.__dict__.get(FETCHED_ATTRIBUTE, {}).get(tp)
        if done is not None and fetched is not None and fetched.last + 1 == done < fetched.position:
            return fetched.position
        return offset

    return _new_offset_past_markers


# --- 4. a gap ends before the record after it ---------------------------------------------

def _gap_before(add_gap: Callable[..., Any]) -> Callable[..., Any]:
    async def _gap_before_record(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        """Note the offsets Faust never saw, [`offset_from`, `offset_to`), not `offset_to`.

        Faust's drain loop calls this with `offset_to` the record just fetched, and Faust
        notes the gap up to and including it. That record is acknowledged too, so once
        `_new_offset` merges the gaps into the acknowledged offsets it holds twice, and its
        run of consecutive offsets (what it commits up to) stops there. On a topic written in
        transactions every transaction's marker leaves a gap, so each commit (every 2.8 s)
        moved past one transaction only: the mirror's group lag drained at about a record a
        second per partition however fast the mirror read, grew for as long as the processor
        committed faster than that, and the acknowledged offsets piled up in memory (the
        duplicate of robinhood/faust#625).
        """
        await add_gap(self, tp, offset_from, offset_to - 1)  # Faust's end is inclusive

    _gap_before_record.__wrapped__ = add_gap  # type: ignore[attr-defined]  # `check` reads it
    return _gap_before_record


# --- checking and installing ---------------------------------------------------------------

def _check_version(package: str) -> None:
    try:
        found = metadata.version(package)
    except metadata.PackageNotFoundError:
        raise PatchMismatch(f"{package} is not installed; streams.worker.patches was written "
                            f"for {package} {WRITTEN_FOR[package]}") from None
    if found != WRITTEN_FOR[package]:
        raise PatchMismatch(
            f"{package} {found} is installed, but streams.worker.patches was written for "
            f"{package} {WRITTEN_FOR[package]}: read each patched name again in {found} "
            f"(is the bug fixed? does the fix still fit?), then move WRITTEN_FOR")


def _check_name(package: str, owner: Any, name: str, parameters: tuple[str, ...] | None = None
                ) -> None:
    """`owner.name` exists (and, given `parameters`, is a callable taking exactly those)."""
    where = f"{getattr(owner, '__module__', '')}.{getattr(owner, '__qualname__', owner)}.{name}"
    version = WRITTEN_FOR[package]
    if not hasattr(owner, name):
        raise PatchMismatch(f"{package} {metadata.version(package)}: {where} is missing; "
                            f"streams.worker.patches was written for {package} {version}")
    if parameters is None:
        return
    found = tuple(inspect.signature(getattr(owner, name)).parameters)
    if found != parameters:
        raise PatchMismatch(
            f"{package} {metadata.version(package)}: {where} takes {found}, "
            f"streams.worker.patches expects {parameters} ({package} {version})")


def _check_source(package: str, owner: Any, name: str, text: str) -> None:
    """`owner.name`'s source still contains `text` (for behaviour a patch relies on)."""
    _check_name(package, owner, name)
    if text not in inspect.getsource(getattr(owner, name)):
        raise PatchMismatch(
            f"{package} {metadata.version(package)}: {owner.__qualname__}.{name} no longer "
            f"contains {text!r}, which streams.worker.patches relies on "
            f"({package} {WRITTEN_FOR[package]})")


def check() -> None:
    """Raise `PatchMismatch` unless every version and name the patches touch is as expected."""
    for package in WRITTEN_FOR:
        _check_version(package)
    from aiokafka import AIOKafkaConsumer
    from aiokafka.consumer.subscription_state import (
        Assignment,
        SubscriptionState,
        TopicPartitionState,
    )
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    faust, aiokafka = "faust-streaming", "aiokafka"
    thread = AIOKafkaConsumerThread
    _check_name(faust, thread, "_highwaters", ("self", "partitions"))
    _check_name(faust, thread, "_ensure_consumer", ("self",))
    _check_name(faust, thread, "_create_worker_consumer", ("self", "transport"))
    _check_name(faust, thread, "_fetch_records",
                ("self", "consumer", "active_partitions", "timeout", "max_records"))
    _check_name(faust, Consumer, "_new_offset", ("self", "tp"))
    _check_name(faust, Consumer, "_add_gap", ("self", "tp", "offset_from", "offset_to"))
    _check_source(faust, Consumer, "_add_gap", "gap_for_tp.addi(offset_from, offset_to + 1)")
    _check_source(faust, Consumer, "_drain_messages", "self._add_gap(tp, r_offset + 1, offset)")
    for attribute in ("_acked", "_committed_offset"):
        if attribute not in Consumer.__annotations__:
            _check_name(faust, Consumer, attribute)  # raises: Faust keeps it no more
    _check_source(aiokafka, AIOKafkaConsumer, "__init__",
                  "self._isolation_level = isolation_level")
    _check_source(aiokafka, AIOKafkaConsumer, "start", "isolation_level=self._isolation_level")
    _check_source(aiokafka, AIOKafkaConsumer, "__init__",
                  "self._fetch_max_wait_ms = fetch_max_wait_ms")
    _check_source(aiokafka, AIOKafkaConsumer, "start",
                  "fetch_max_wait_ms=self._fetch_max_wait_ms")
    _check_source(faust, AIOKafkaConsumerThread, "_create_worker_consumer",
                  "fetch_max_wait_ms=1500")
    _check_name(aiokafka, AIOKafkaConsumer, "end_offsets", ("self", "partitions"))
    _check_name(aiokafka, AIOKafkaConsumer, "assignment", ("self",))
    _check_name(aiokafka, SubscriptionState, "subscription")
    _check_name(aiokafka, Assignment, "state_value", ("self", "tp"))
    _check_name(aiokafka, TopicPartitionState, "has_valid_position")
    _check_name(aiokafka, TopicPartitionState, "position")


def install() -> None:
    """Check (`check`), then patch Faust; a second call does nothing."""
    global _installed
    with _install_lock:
        if _installed:
            return
        check()
        from faust.transport.consumer import Consumer
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as Thread

        create, fetch, new_offset, add_gap = (
            Thread._create_worker_consumer, Thread._fetch_records, Consumer._new_offset,
            Consumer._add_gap)
        Thread._highwaters = _broker_highwaters  # type: ignore[method-assign]
        Thread._create_worker_consumer = _worker_consumer(create)  # type: ignore[method-assign,assignment]
        Thread._fetch_records = _noting_positions(fetch)  # type: ignore[method-assign]
        Consumer._new_offset = _past_markers(new_offset)  # type: ignore[method-assign,assignment]
        Consumer._add_gap = _gap_before(add_gap)  # type: ignore[method-assign]
        _installed = True


def installed() -> bool:
    return _installed
