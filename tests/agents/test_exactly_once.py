"""Exactly-once under SIGKILL: a real worker killed mid-stream leaves no double effect.

Faust's exactly_once is trusted by nobody here (its tracker reports duplicates on
rebalance), so this test kills a `hotelhub worker` process with SIGKILL several
times while bookings, check-ins and check-outs stream in, restarts it each time,
and then looks from the outside, as a downstream system would, with read_committed
consumers: derived room events, the stays changelog, availability deltas and the
availability changelog, and the refusals topic.

Each round has its own consumer group (app id) and its own hotel id, so it reads
only its own data from the shared hub topics. Kill moments are random; the seed is
printed and in every failure message.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from streams.codec import ConfluentAvroCodec
from streams.kinds import POLICIES, REFUSAL_TOPIC, EventKind, System
from streams.models import CheckinCheckoutEvent, HotelEvent, ReservationEvent, RoomEvent
from streams.publisher import HotelEventPublisher, build_event
from streams.registry_client import SchemaRegistryClient
from streams.rules import derived_id
from streams.settings import HubSettings
from streams.state import AvailabilityState, ReservationState
from streams.topics import ensure_topics
from tests.support.eos import (
    changelog_topic,
    committed_offsets,
    delete_app_topics,
    end_offsets,
    killable_worker,
    last_values,
    read_topic,
    sigkill,
)
from tests.support.events import sample
from tests.support.workers import WorkerProcess, worker_app_id

pytestmark = pytest.mark.integration

ROUNDS = 3
STAYS = 60
KILLS = (3, 4)
"""Kills per round, drawn at random in this range (inclusive)."""
ROUND_BUDGET_S = 240.0
LIFE_START_BUDGET_S = 90.0
"""How long a (re)started worker may take to write its first changelog record."""
PUBLISH_SPREAD_S = 2.0
"""Each life's share of the stream is published over about this long."""
KILL_DELAY_S = (0.0, 2.5)
"""SIGKILL this long after the worker is seen writing: inside Faust's 2.8 s commit interval."""

ROOM_TYPES = ("DBL", "TWN", "SGL")
FIRST_NIGHT = date(2026, 11, 23)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Stay:
    reservation: ReservationEvent
    checkin: CheckinCheckoutEvent
    checkout: CheckinCheckoutEvent
    room_type: str
    nights: tuple[date, ...]

    @property
    def key(self) -> bytes:
        return f"{self.reservation.hotel_id}:{self.reservation.data.reservation_id}".encode()


def plan_stays(hotel_id: str, count: int) -> list[Stay]:
    """`count` bookings of 1-3 nights over a week, each in its own room, with check-in and out."""
    stays = []
    for index in range(count):
        reservation_id = f"{hotel_id}-R{index:03d}"
        room_type = ROOM_TYPES[index % len(ROOM_TYPES)]
        arrive = FIRST_NIGHT + timedelta(days=index % 5)
        leave = arrive + timedelta(days=1 + index % 3)
        room = {"room_id": f"{hotel_id}-RM{index:03d}", "room_number": f"{100 + index}"}
        _, booking = sample(EventKind.RESERVATION, reservation_id, room_type=room_type,
                            room_number=room["room_number"], checkin_date=arrive.isoformat(),
                            checkout_date=leave.isoformat(), customer_id=f"C{index}")
        pms, checkout = sample(EventKind.CHECKIN_CHECKOUT, reservation_id, **room,
                               customer_id=f"C{index}",
                               actual_checkin_time=f"{arrive}T15:{index % 60:02d}:00+09:00",
                               actual_checkout_time=f"{leave}T10:{index % 60:02d}:00+09:00")
        checkin = {**checkout, "action": "checked_in",
                   "data": {**checkout["data"], "actual_checkout_time": None,
                            "additional_charges": None, "payment_status": "pending"}}
        events = [
            build_event({**document, "hotel_id": hotel_id}, publisher=system,
                        default_hotel_id=hotel_id)
            for system, document in ((System.HOTEL_SAAS, booking), (pms, checkin),
                                     (pms, checkout))
        ]
        assert isinstance(events[0], ReservationEvent)
        assert isinstance(events[1], CheckinCheckoutEvent)
        assert isinstance(events[2], CheckinCheckoutEvent)
        stays.append(Stay(
            reservation=events[0], checkin=events[1], checkout=events[2],
            room_type=room_type,
            nights=tuple(arrive + timedelta(days=n) for n in range((leave - arrive).days)),
        ))
    return stays


def mixed_stream(stays: Sequence[Stay]) -> list[HotelEvent]:
    """Booking k, check-in k-1, check-out k-2, ...: each stay in order, stays interleaved."""
    stream: list[HotelEvent] = []
    for k in range(len(stays) + 2):
        if k < len(stays):
            stream.append(stays[k].reservation)
        if 0 <= k - 1 < len(stays):
            stream.append(stays[k - 1].checkin)
        if 0 <= k - 2 < len(stays):
            stream.append(stays[k - 2].checkout)
    return stream


def split(items: Sequence[HotelEvent], parts: int) -> list[Sequence[HotelEvent]]:
    size = -(-len(items) // parts)
    return [items[start:start + size] for start in range(0, len(items), size)]


@dataclass
class Round:
    """One kill-and-restart run: its ids, its worker, and what happened, for the report."""

    number: int
    seed: int
    hotel_id: str
    app_id: str
    worker: WorkerProcess
    kills_planned: int
    kills: list[float] = field(default_factory=list)
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)

    def note(self, text: str) -> None:
        self.notes.append(f"{time.monotonic() - self.started_at:6.1f}s {text}")

    def report(self) -> str:
        return "\n".join([
            f"round {self.number}: seed={self.seed} hotel={self.hotel_id} app={self.app_id} "
            f"kills={len(self.kills)}/{self.kills_planned} starts={self.worker.starts}",
            *self.notes,
            "worker log, last lines:",
            self.worker.log_tail(lines=30),
        ])


@pytest.mark.parametrize("number", range(ROUNDS))
async def test_sigkill_mid_stream_leaves_no_double_effect(
    number: int, hub_settings: HubSettings, tmp_path: Path
) -> None:
    seed = int(os.environ.get("HOTELHUB_EOS_SEED", "0")) or random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed + number)
    app_id = worker_app_id(hub_settings, f"eos{number}")
    hotel_id = f"EOS-{uuid.uuid4().hex[:8]}"
    await ensure_topics(hub_settings)  # before publishing: the broker may auto-create otherwise
    worker = killable_worker(hub_settings, name="eos", app_id=app_id, web_port=free_port(),
                             work_dir=tmp_path)
    run = Round(number, seed, hotel_id, app_id, worker, rng.randint(*KILLS))
    print(f"\n{run.report().splitlines()[0]}")
    stays = plan_stays(hotel_id, STAYS)
    try:
        async with asyncio.timeout(ROUND_BUDGET_S):
            await kill_while_streaming(run, rng, hub_settings, mixed_stream(stays))
            await wait_until_everything_committed(run, hub_settings, stays)
        worker.stop()
        run.note("worker stopped (SIGTERM)")
        await check_outcome(run, hub_settings, stays)
    except BaseException as exc:
        worker.stop()  # first, so the log is complete
        exc.add_note(run.report())
        raise
    finally:
        worker.stop()
        try:
            await delete_app_topics(hub_settings, app_id)
        except Exception as exc:  # clean-up must not hide the test's own failure
            print(f"could not delete {app_id}'s topics: {exc!r}")
    print("\n".join(run.notes))


async def kill_while_streaming(
    run: Round, rng: random.Random, settings: HubSettings, stream: Sequence[HotelEvent]
) -> None:
    """Start, publish a share of the stream, SIGKILL while the worker writes; repeat; restart."""
    changelog = f"{run.app_id}.stays"  # the stay processor's state log
    async with (
        SchemaRegistryClient(settings.registry_url) as registry,
        HotelEventPublisher(system=System.HOTEL_SAAS, registry=registry,
                            settings=settings) as saas,
        HotelEventPublisher(system=System.HOTEL_PMS, registry=registry, settings=settings) as pms,
    ):
        publishers = {System.HOTEL_SAAS.value: saas, System.HOTEL_PMS.value: pms}

        async def publish(share: Sequence[HotelEvent]) -> None:
            for event in share:
                published = await publishers[event.updated_by_system].send(event)
                tp = TopicPartition(published.topic, published.partition)
                run.last_offsets[tp] = max(run.last_offsets.get(tp, -1), published.offset)
                await asyncio.sleep(PUBLISH_SPREAD_S / max(len(share), 1))

        shares = split(stream, run.kills_planned + 1)
        for life, share in enumerate(shares):
            baseline = sum((await end_offsets(settings, [changelog])).values())
            run.worker.start()
            run.note(f"life {life + 1}: worker pid {run.worker.pid} started, "
                     f"publishing {len(share)} events; changelog end {baseline}")
            publishing = asyncio.create_task(publish(share))
            try:
                if life < len(shares) - 1:
                    written = await wait_for_writes(run, settings, changelog, baseline)
                    delay = rng.uniform(*KILL_DELAY_S)
                    await asyncio.sleep(delay)
                    run.kills.append(sigkill(run.worker))
                    run.note(f"life {life + 1}: SIGKILL {delay:.2f}s after the changelog grew "
                             f"to {written}")
                await publishing
            finally:
                publishing.cancel()
        run.note(f"final life running; published {len(stream)} events")


async def wait_for_writes(run: Round, settings: HubSettings, changelog: str, baseline: int) -> int:
    """Until the worker writes to the stays changelog (open transaction or not); bounded."""
    deadline = time.monotonic() + LIFE_START_BUDGET_S
    while time.monotonic() < deadline:
        if not run.worker.running():
            raise AssertionError("worker exited by itself")
        written = sum((await end_offsets(settings, [changelog])).values())
        if written > baseline:
            return written
        await asyncio.sleep(0.1)
    raise AssertionError(f"worker wrote nothing to {changelog} within {LIFE_START_BUDGET_S:g} s")


async def wait_until_everything_committed(
    run: Round, settings: HubSettings, stays: Sequence[Stay]
) -> None:
    """Until the groups' committed offsets pass every record of ours they must process.

    The stay processor (group `<app>-stays`) commits its offsets in the same
    transaction as what processing them wrote, so once they pass our inputs, our
    derived records are committed too. Then the agents (group `<app>`) must have
    consumed the room events and deltas derived from them (read_committed).
    """
    await wait_committed_past(run, settings, dict(run.last_offsets), "published events",
                              group=f"{run.app_id}-stays")
    derived = await read_topic(settings, settings.topic(POLICIES[EventKind.ROOM].topic))
    ours = {
        TopicPartition(record.topic, record.partition): record.offset
        for record in derived if _hotel(record.headers) == run.hotel_id
    }
    deltas = await read_deltas(settings, run.app_id)
    for record in deltas:
        if json.loads(record.value or b"{}").get("hotel_id") == run.hotel_id:
            tp = TopicPartition(record.topic, record.partition)
            ours[tp] = max(ours.get(tp, -1), record.offset)
    await wait_committed_past(run, settings, ours, "derived room events and deltas",
                              group=run.app_id)


async def wait_committed_past(
    run: Round, settings: HubSettings, offsets: dict[TopicPartition, int], what: str, *,
    group: str,
) -> None:
    while True:
        if not run.worker.running():
            raise AssertionError("worker exited by itself")
        committed = await committed_offsets(settings, group)
        behind = {tp: offset for tp, offset in offsets.items() if committed.get(tp, -1) <= offset}
        if not behind:
            run.note(f"group committed past all {what} ({len(offsets)} partitions)")
            return
        await asyncio.sleep(0.5)


async def read_deltas(settings: HubSettings, app_id: str) -> list[ConsumerRecord[bytes, bytes]]:
    """The availability deltas, on the app's own topic (streams.channels)."""
    return await read_topic(settings, f"{app_id}.inventory-deltas")


def _hotel(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name == "ce_hotelid":
            return value.decode()
    return None


async def check_outcome(run: Round, settings: HubSettings, stays: Sequence[Stay]) -> None:
    failures: list[str] = []
    async with SchemaRegistryClient(settings.registry_url) as registry:
        codec = ConfluentAvroCodec(registry)
        derived = [
            event for record in await read_topic(settings, settings.topic(
                POLICIES[EventKind.ROOM].topic))
            if _hotel(record.headers) == run.hotel_id
            and isinstance(event := await codec.decode(EventKind.ROOM, record.value or b""),
                           RoomEvent)
            and event.updated_by_system == System.HOTEL_HUB.value
        ]
        refusals = [
            (await codec.decode_refusal(record.value or b"")).model_dump(mode="json")
            for record in await read_topic(settings, settings.topic(REFUSAL_TOPIC))
            if _hotel(record.headers) == run.hotel_id
        ]

    # (a) every check-in and check-out derived exactly one visible room event
    counts = Counter(str(event.event_id) for event in derived)
    expected = {
        str(derived_id(movement.event_id, "room-status")): str(movement.event_id)
        for stay in stays for movement in (stay.checkin, stay.checkout)
    }
    duplicated = {event_id: n for event_id, n in counts.items() if n > 1}
    missing = sorted(set(expected) - set(counts))
    unexpected = sorted(set(counts) - set(expected))
    wrong_cause = [str(event.event_id) for event in derived
                   if expected.get(str(event.event_id)) not in (None, event.causation_id)]
    run.note(f"derived room events visible (read_committed): {len(derived)} records, "
             f"{len(counts)} ids, expected {len(expected)}; duplicated {len(duplicated)}")
    if duplicated or missing or unexpected or wrong_cause:
        failures.append(f"room events: duplicated {duplicated}, missing {missing}, "
                        f"unexpected {unexpected}, wrong causation {wrong_cause}")

    # (b) every stay checked out with its times, each event applied once; no refusals
    changelog = f"{run.app_id}.stays"
    states = last_values(await read_topic(settings, changelog))
    bad_states = []
    for stay in stays:
        raw = states.get(stay.key)
        state = None if raw is None else ReservationState.model_validate_json(raw)
        ids = [str(e.event_id) for e in (stay.reservation, stay.checkin, stay.checkout)]
        if (state is None or state.status != "checked_out"
                or state.actual_checkin_time != stay.checkin.data.actual_checkin_time
                or state.actual_checkout_time != stay.checkout.data.actual_checkout_time
                or state.applied.recent_event_ids != ids or state.pending_movements):
            bad_states.append(f"{stay.key.decode()}: {state}")
    run.note(f"stays in the changelog: {sum(k.startswith(run.hotel_id.encode()) for k in states)}"
             f", wrong {len(bad_states)}; refusals for the hotel: {len(refusals)}")
    if bad_states:
        # Evidence for the report: was the right state written but never committed?
        uncommitted = last_values(await read_topic(settings, changelog,
                                                   isolation_level="read_uncommitted"))
        written = [stay.key.decode() for stay in stays if stay.key.decode() in
                   {bad.split(": ", 1)[0] for bad in bad_states}
                   and (raw := uncommitted.get(stay.key)) is not None
                   and ReservationState.model_validate_json(raw).status == "checked_out"]
        failures.append(f"{len(bad_states)} wrong stays (checked_out only in uncommitted "
                        f"records: {written}), e.g. {bad_states[:2]}")
    if refusals:
        failures.append(f"{len(refusals)} refusals, e.g. {refusals[:3]}")

    # (c) availability: sold nights as the bookings imply; every delta visible once
    deltas = [
        value for record in await read_deltas(settings, run.app_id)
        if (value := json.loads(record.value or b"{}")).get("hotel_id") == run.hotel_id
    ]
    delta_counts = Counter((d["cause_event_id"], d["room_type"]) for d in deltas)
    duplicated_deltas = {key: n for key, n in delta_counts.items() if n > 1}
    availability = {
        key: AvailabilityState.model_validate_json(raw)
        for key, raw in last_values(await read_topic(
            settings, changelog_topic(run.app_id, "room_type_to_availability"))).items()
        if key.startswith(f"{run.hotel_id}:".encode()) and raw is not None
    }
    want = expected_availability(stays)
    got: dict[str, dict[str, Any]] = {
        state.room_type: {
            "in_house": state.in_house,
            "sold": {night: counts.sold for night, counts in state.nights.items()
                     if counts.sold},
            "out_of_order": sum(counts.out_of_order for counts in state.nights.values()),
        }
        for state in availability.values()
    }
    run.note(f"deltas visible: {len(deltas)} ({len(delta_counts)} distinct, duplicated "
             f"{len(duplicated_deltas)}); sold nights in the table "
             f"{sum(sum(v['sold'].values()) for v in got.values())}, expected "
             f"{sum(sum(v['sold'].values()) for v in want.values())}")
    if duplicated_deltas:
        failures.append(f"deltas visible more than once: {duplicated_deltas}")
    if got != want:
        failures.append(f"availability {got} != expected {want}")

    assert not failures, "\n".join(failures)


def expected_availability(stays: Sequence[Stay]) -> dict[str, dict[str, Any]]:
    """One sold night per booked night; one room in the house per stay (each has its own room)."""
    want: dict[str, dict[str, Any]] = {}
    for stay in stays:
        entry = want.setdefault(stay.room_type, {"in_house": 0, "sold": Counter(),
                                                 "out_of_order": 0})
        entry["in_house"] += 1
        entry["sold"].update(stay.nights)
    return {room_type: {**entry, "sold": dict(entry["sold"])} for room_type, entry in want.items()}
