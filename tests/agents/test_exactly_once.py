"""Exactly-once under SIGKILL: a real worker killed mid-stream leaves no double effect.

The hotel processor (`streams.runners.hotel_processor`) forwards every event to its hotel's
partition of `<app>.hotel-events` and applies it there, writing the new states
(`<app>.hotel-state`), refusals, derived room events and the consumed offsets in one
Kafka transaction per partition batch. This test kills a `hotelhub worker` process with
SIGKILL several times while bookings, check-ins and check-outs stream in, restarts it
each time, and then looks from the outside, as a downstream system would, with
read_committed consumers: the derived room events on hotel.room, the state log (last
value per key: stays, rooms, availability), the refusals and the dead letters.

Each round has topics of its own (`tests.support.workers.isolated`: no other app of the
session reads its events or writes to its refusals), its own app id (consumer groups,
transactional ids, state log) and its own hotel id; derived room events are still
recognised by their `hub.derived-by` header naming the round's app. The
hotel's rooms are published (and applied) before the first booking: the hub refuses a
booking for a room type it has no rooms of. Kill moments are random; the seed is
printed and in every failure message.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.core.documents import build_event
from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, REFUSAL_TOPIC, EventKind, System
from streams.core.models import CheckinCheckoutEvent, HotelEvent, ReservationEvent, RoomEvent
from streams.core.rules import derived_id
from streams.core.state import AvailabilityState, ReservationState, RoomState
from streams.core.step import AVAILABILITY, ROOM, STAY
from streams.runners.admin import ensure_topics
from streams.runners.effects import DERIVED_BY
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.topics import hotel_events_topic, state_topic
from tests.support.eos import (
    committed_offsets,
    delete_topics_under,
    end_offsets,
    header,
    hotel_state_records,
    killable_worker,
    last_states,
    of_hotel,
    read_topic,
    sigkill,
)
from tests.support.events import sample
from tests.support.workers import WorkerProcess, free_port, isolated, worker_app_id

pytestmark = pytest.mark.integration

ROUNDS = 3
STAYS = 60
KILLS = (3, 4)
"""Kills per round, drawn at random in this range (inclusive)."""
ROUND_BUDGET_S = 150.0
LIFE_START_BUDGET_S = 60.0
"""How long a (re)started worker may take to write its first state record."""
PUBLISH_SPREAD_S = 2.0
"""Each life's share of the stream is published over about this long."""
KILL_DELAY_S = (0.0, 1.5)
"""SIGKILL this long after the worker is seen writing: while it commits batch after batch."""

READY = re.compile(r"hotel partition (\d+) ready")
"""What `streams.runners.hotel_processor` logs once it took a partition and restored its states."""
ROOM_TYPES = ("DBL", "TWN", "SGL")
FIRST_NIGHT = date(2026, 11, 23)


@dataclass(frozen=True)
class Stay:
    room: RoomEvent
    reservation: ReservationEvent
    checkin: CheckinCheckoutEvent
    checkout: CheckinCheckoutEvent
    room_type: str
    nights: tuple[date, ...]

    @property
    def reservation_id(self) -> str:
        return self.reservation.data.reservation_id

    @property
    def room_id(self) -> str:
        return self.room.data.room_id


def plan_rooms(hotel_id: str, count: int) -> list[RoomEvent]:
    """One vacant room per stay, its type the stay's; built before the stays' events, so the
    status a check-in derives is newer than the room's own (`rules.apply_room`)."""
    rooms = []
    for index in range(count):
        system, document = sample(
            EventKind.ROOM, f"{hotel_id}-RM{index:03d}", room_number=f"{100 + index}",
            room_type=ROOM_TYPES[index % len(ROOM_TYPES)], status="vacant_clean",
            availability_date=FIRST_NIGHT.isoformat(), maintenance_notes=None, version=1)
        event = build_event({**document, "action": "status_changed", "hotel_id": hotel_id},
                            publisher=system, default_hotel_id=hotel_id)
        assert isinstance(event, RoomEvent)
        rooms.append(event)
    return rooms


def plan_stays(hotel_id: str, rooms: Sequence[RoomEvent]) -> list[Stay]:
    """A booking of 1-3 nights over a week in each room, with its check-in and check-out."""
    stays = []
    for index, room in enumerate(rooms):
        reservation_id = f"{hotel_id}-R{index:03d}"
        room_type = room.data.room_type
        arrive = FIRST_NIGHT + timedelta(days=index % 5)
        leave = arrive + timedelta(days=1 + index % 3)
        where = {"room_id": room.data.room_id, "room_number": room.data.room_number}
        _, booking = sample(EventKind.RESERVATION, reservation_id, room_type=room_type,
                            room_number=room.data.room_number, checkin_date=arrive.isoformat(),
                            checkout_date=leave.isoformat(), customer_id=f"C{index}")
        pms, checkout = sample(EventKind.CHECKIN_CHECKOUT, reservation_id, **where,
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
            room=room, reservation=events[0], checkin=events[1], checkout=events[2],
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

    @property
    def group(self) -> str:
        """The hotel processor's consumer group (`streams.runners.hotel_processor`)."""
        return f"{self.app_id}-hotels"

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


def _app(settings: HubSettings, app_id: str) -> HubSettings:
    return settings.model_copy(update={"app_id": app_id})


@pytest.mark.parametrize("number", range(ROUNDS))
async def test_sigkill_mid_stream_leaves_no_double_effect(
    number: int, hub_settings: HubSettings, tmp_path: Path
) -> None:
    seed = int(os.environ.get("HOTELHUB_EOS_SEED", "0")) or random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed + number)
    settings = isolated(hub_settings, f"eos{number}")
    app_id = worker_app_id(settings, f"eos{number}")
    hotel_id = f"EOS-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings)  # before publishing: the broker may auto-create otherwise
    worker = killable_worker(settings, name="eos", app_id=app_id, web_port=free_port(),
                             work_dir=tmp_path)
    run = Round(number, seed, hotel_id, app_id, worker, rng.randint(*KILLS))
    print(f"\n{run.report().splitlines()[0]}")
    rooms = plan_rooms(hotel_id, STAYS)
    stays = plan_stays(hotel_id, rooms)
    try:
        async with asyncio.timeout(ROUND_BUDGET_S):
            await kill_while_streaming(run, rng, settings, rooms, mixed_stream(stays))
            await wait_until_everything_committed(run, settings)
        worker.stop()
        run.note("worker stopped (SIGTERM)")
        await check_outcome(run, settings, stays)
    except BaseException as exc:
        worker.stop()  # first, so the log is complete
        exc.add_note(run.report())
        raise
    finally:
        worker.stop()
        try:
            await delete_topics_under(settings, session=hub_settings)  # the app's too
        except Exception as exc:  # clean-up must not hide the test's own failure
            print(f"could not delete the round's topics {settings.topic_prefix}*: {exc!r}")
    print("\n".join(run.notes))


async def kill_while_streaming(
    run: Round, rng: random.Random, settings: HubSettings, rooms: Sequence[RoomEvent],
    stream: Sequence[HotelEvent],
) -> None:
    """Start, publish the rooms and wait until they are applied; then publish a share of the
    stream, SIGKILL while the worker writes, restart; repeat; the last life runs on."""
    log = state_topic(_app(settings, run.app_id))
    async with (
        SchemaRegistryClient(settings.registry_url) as registry,
        HotelEventPublisher(system=System.HOTEL_SAAS, registry=registry,
                            settings=settings) as saas,
        HotelEventPublisher(system=System.HOTEL_PMS, registry=registry, settings=settings) as pms,
    ):
        publishers = {System.HOTEL_SAAS.value: saas, System.HOTEL_PMS.value: pms}

        async def publish(share: Sequence[HotelEvent], spread_s: float) -> None:
            for event in share:
                published = await publishers[event.updated_by_system].send(event)
                tp = TopicPartition(published.topic, published.partition)
                run.last_offsets[tp] = max(run.last_offsets.get(tp, -1), published.offset)
                await asyncio.sleep(spread_s / max(len(share), 1))

        shares = split(stream, run.kills_planned + 1)
        for life, share in enumerate(shares):
            run.worker.start()
            run.note(f"life {life + 1}: worker pid {run.worker.pid} started")
            if life == 0:
                await publish(rooms, 0.0)
                await wait_for_rooms(run, settings, rooms)
            await wait_until_ready(run, settings)
            baseline = sum((await end_offsets(settings, [log])).values())
            run.note(f"life {life + 1}: publishing {len(share)} events; state log end {baseline}")
            publishing = asyncio.create_task(publish(share, PUBLISH_SPREAD_S))
            try:
                if life < len(shares) - 1:
                    written = await wait_for_writes(run, settings, log, baseline)
                    delay = rng.uniform(*KILL_DELAY_S)
                    await asyncio.sleep(delay)
                    run.kills.append(sigkill(run.worker))
                    run.note(f"life {life + 1}: SIGKILL {delay:.2f}s after the state log grew "
                             f"to {written}")
                await publishing
            finally:
                publishing.cancel()
        run.note(f"final life running; published {len(rooms)} rooms and {len(stream)} events")


async def wait_for_rooms(run: Round, settings: HubSettings, rooms: Sequence[RoomEvent]) -> None:
    """Until every room is in the committed state log: bookings need their room type."""
    wanted = {room.data.room_id for room in rooms}
    deadline = time.monotonic() + LIFE_START_BUDGET_S
    while True:
        if not run.worker.running():
            raise AssertionError("worker exited by itself")
        states = last_states(await hotel_state_records(settings, run.app_id), run.hotel_id)
        missing = wanted - {entity for tag, entity in states if tag == ROOM}
        if not missing:
            run.note(f"all {len(wanted)} rooms applied (committed state log)")
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} rooms not applied within "
                                 f"{LIFE_START_BUDGET_S:g} s, e.g. {sorted(missing)[:3]}")
        await asyncio.sleep(0.3)


async def wait_until_ready(run: Round, settings: HubSettings) -> None:
    """Until the worker's processor owns every partition (its log says so), so the share is
    published while it processes event by event: a kill then lands among transactions."""
    deadline = time.monotonic() + LIFE_START_BUDGET_S
    while True:
        if not run.worker.running():
            raise AssertionError("worker exited by itself")
        text = run.worker.logs[-1].read_text(encoding="utf-8", errors="replace")
        ready = set(READY.findall(text))
        if len(ready) >= settings.topic_partitions:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the processor took only partitions {sorted(ready)} within "
                                 f"{LIFE_START_BUDGET_S:g} s")
        await asyncio.sleep(0.2)


async def wait_for_writes(run: Round, settings: HubSettings, log: str, baseline: int) -> int:
    """Until the worker writes to the state log (open transaction or not); bounded."""
    deadline = time.monotonic() + LIFE_START_BUDGET_S
    while time.monotonic() < deadline:
        if not run.worker.running():
            raise AssertionError("worker exited by itself")
        written = sum((await end_offsets(settings, [log])).values())
        if written > baseline:
            return written
        await asyncio.sleep(0.1)
    raise AssertionError(f"worker wrote nothing to {log} within {LIFE_START_BUDGET_S:g} s")


async def wait_until_everything_committed(run: Round, settings: HubSettings) -> None:
    """Until the processor's group committed past every record of ours, twice over.

    First past the published events (committed with their forwarding to the hotel's
    partition of `<app>.hotel-events`), then past those forwarded records (committed with
    the states, refusals and room events applying them wrote): then all is visible.
    """
    await wait_committed_past(run, settings, dict(run.last_offsets), "published events")
    forwarded: dict[TopicPartition, int] = {}
    app = _app(settings, run.app_id)
    for record in await read_topic(settings, hotel_events_topic(app)):
        if of_hotel(record, run.hotel_id):
            tp = TopicPartition(record.topic, record.partition)
            forwarded[tp] = max(forwarded.get(tp, -1), record.offset)
    await wait_committed_past(run, settings, forwarded, "re-keyed events")


async def wait_committed_past(
    run: Round, settings: HubSettings, offsets: dict[TopicPartition, int], what: str
) -> None:
    while True:
        if not run.worker.running():
            raise AssertionError("worker exited by itself")
        committed = await committed_offsets(settings, run.group)
        behind = {tp: offset for tp, offset in offsets.items() if committed.get(tp, -1) <= offset}
        if not behind:
            run.note(f"{run.group} committed past all {what} ({len(offsets)} partitions)")
            return
        await asyncio.sleep(0.5)


async def check_outcome(run: Round, settings: HubSettings, stays: Sequence[Stay]) -> None:
    failures: list[str] = []
    room_topic = settings.topic(POLICIES[EventKind.ROOM].topic)
    ours = [record for record in await read_topic(settings, room_topic)
            if of_hotel(record, run.hotel_id) and header(record, DERIVED_BY) == run.app_id]
    every = [record for record in await read_topic(settings, room_topic,
                                                   isolation_level="read_uncommitted")
             if of_hotel(record, run.hotel_id) and header(record, DERIVED_BY) == run.app_id]
    async with SchemaRegistryClient(settings.registry_url) as registry:
        codec = ConfluentAvroCodec(registry)
        derived = []
        for record in ours:
            event = await codec.decode(EventKind.ROOM, record.value or b"")
            assert isinstance(event, RoomEvent)
            derived.append(event)
        refusals = [
            (await codec.decode_refusal(record.value or b"")).model_dump(mode="json")
            for record in await read_topic(settings, settings.topic(REFUSAL_TOPIC))
            if of_hotel(record, run.hotel_id)
        ]
    dead = [
        f"{header(record, 'hub.errors.topic')}: {header(record, 'hub.errors.exception.class')}"
        f" {header(record, 'hub.errors.exception.message')}"
        for record in await read_topic(settings, settings.topic(DEADLETTER_TOPIC),
                                       isolation_level="read_uncommitted")
        if of_hotel(record, run.hotel_id)
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
             f"{len(counts)} ids, expected {len(expected)}; duplicated {len(duplicated)}; "
             f"written including aborted transactions: {len(every)}")
    if duplicated or missing or unexpected or wrong_cause:
        failures.append(f"room events: duplicated {duplicated}, missing {missing}, "
                        f"unexpected {unexpected}, wrong causation {wrong_cause}")

    # (b) every stay checked out with its times, each event applied once; every room
    # vacated by its guest; no refusal, no dead letter
    records = await hotel_state_records(settings, run.app_id)
    states = last_states(records, run.hotel_id)
    bad_states = []
    for stay in stays:
        raw = states.get((STAY, stay.reservation_id))
        state = None if raw is None else ReservationState.model_validate_json(raw)
        ids = [str(e.event_id) for e in (stay.reservation, stay.checkin, stay.checkout)]
        if (state is None or state.status != "checked_out"
                or state.actual_checkin_time != stay.checkin.data.actual_checkin_time
                or state.actual_checkout_time != stay.checkout.data.actual_checkout_time
                or state.applied.recent_event_ids != ids
                or state.movement_ids != {"checked_in": ids[1], "checked_out": ids[2]}
                or state.pending_movements):
            bad_states.append(f"stay {stay.reservation_id}: {state}")
        raw = states.get((ROOM, stay.room_id))
        room = None if raw is None else RoomState.model_validate_json(raw)
        room_ids = [str(stay.room.event_id), *(
            str(derived_id(m.event_id, "room-status")) for m in (stay.checkin, stay.checkout))]
        if (room is None or room.status != "vacant_dirty" or room.current_reservation_id
                or room.applied.recent_event_ids != room_ids):
            bad_states.append(f"room {stay.room_id}: {room}")
    written = await hotel_state_records(settings, run.app_id, isolation_level="read_uncommitted")
    run.note(f"state log: {len(records)} committed records, {len(states)} keys of the hotel, "
             f"wrong {len(bad_states)}; records in aborted transactions "
             f"{len(written) - len(records)}; refusals {len(refusals)}; dead letters {len(dead)}")
    if bad_states:
        # Evidence for the report: was the right state written but never committed?
        uncommitted = last_states(written, run.hotel_id)
        written = [stay.reservation_id for stay in stays
                   if (raw := uncommitted.get((STAY, stay.reservation_id))) is not None
                   and raw != states.get((STAY, stay.reservation_id))
                   and ReservationState.model_validate_json(raw).status == "checked_out"]
        failures.append(f"{len(bad_states)} wrong states (checked_out only in uncommitted "
                        f"records: {written}), e.g. {bad_states[:2]}")
    if refusals:
        failures.append(f"{len(refusals)} refusals, e.g. {refusals[:3]}")
    if dead:
        failures.append(f"{len(dead)} dead letters of the hotel, e.g. {dead[:3]}")

    # (c) availability: rooms in the house and sold nights as planned, each counted once;
    # no committed availability record on the way ever counted more than that
    want = expected_availability(stays)
    got: dict[str, dict[str, Any]] = {}
    for (tag, room_type), raw in states.items():
        if tag == AVAILABILITY and raw is not None:
            got[room_type] = _summary(AvailabilityState.model_validate_json(raw))
    prefix = f"{run.hotel_id}:".encode()
    overcounted = []
    for tag, key, raw in records:
        if tag != AVAILABILITY or raw is None or not key.startswith(prefix):
            continue
        state = AvailabilityState.model_validate_json(raw)
        final = want.get(state.room_type, {"in_house": 0, "sold": {}})
        over = {night.isoformat(): counts.sold for night, counts in state.nights.items()
                if counts.sold > final["sold"].get(night, 0)}
        if state.in_house > final["in_house"] or over or any(
                state.free(night) < 0 for night in state.nights):
            overcounted.append(f"{state.room_type}: in house {state.in_house}, sold {over}")
    run.note(f"sold nights in the availability states {_sold(got)}, expected {_sold(want)}; "
             f"availability records of the hotel over the limit {len(overcounted)}")
    if got != want:
        failures.append(f"availability {got} != expected {want}")
    if overcounted:
        failures.append(f"committed availability counted too much on the way: {overcounted[:5]}")

    assert not failures, "\n".join(failures)


def _summary(state: AvailabilityState) -> dict[str, Any]:
    return {
        "in_house": state.in_house,
        "sold": {night: counts.sold for night, counts in state.nights.items() if counts.sold},
        "out_of_order": sum(counts.out_of_order for counts in state.nights.values()),
    }


def _sold(availability: dict[str, dict[str, Any]]) -> int:
    return sum(sum(entry["sold"].values()) for entry in availability.values())


def expected_availability(stays: Sequence[Stay]) -> dict[str, dict[str, Any]]:
    """One sold night per booked night (each guest leaves on the booked day, so no night is
    freed); one room in the house per stay (each has its own room)."""
    want: dict[str, dict[str, Any]] = {}
    for stay in stays:
        entry = want.setdefault(stay.room_type, {"in_house": 0, "sold": Counter(),
                                                 "out_of_order": 0})
        entry["in_house"] += 1
        entry["sold"].update(stay.nights)
    return {room_type: {**entry, "sold": dict(entry["sold"])} for room_type, entry in want.items()}
