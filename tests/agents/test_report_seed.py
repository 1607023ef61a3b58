"""A hub upgraded to reports counts the stays and rooms it decided before: the hotel
processor sends their report facts once when it takes a partition without the marker."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.core.models import ReservationStatus, RoomStatus
from streams.core.state import ReportsSeeded, ReservationState, RoomState, table_key
from streams.core.step import FACTS_VERSION, ROOM, SEEDED, STAY, seed_facts
from streams.runners.effects import state_key
from streams.runners.restore import RestoredStates
from streams.settings import HubSettings
from streams.wire.partitioning import hotel_partition
from streams.wire.topics import report_facts_topic, state_topic
from tests.support.hotel import new_hotel_id
from tests.support.http import get, poll
from tests.support.workers import isolated, stopped_at_exit, worker_group

NIGHT = date(2026, 10, 10)


def _house(hotel: str) -> dict[tuple[str, bytes], RoomState | ReservationState]:
    """One room and one guest in it for two nights, as the state log holds them."""
    room = RoomState(hotel_id=hotel, room_id="R1", room_number="101", room_type="DBL",
                     status=RoomStatus.OCCUPIED_CLEAN, availability_date=NIGHT, version=1)
    stay = ReservationState(
        hotel_id=hotel, reservation_id="B1", status=ReservationStatus.CHECKED_IN,
        customer_id="C1", room_type="DBL", checkin_date=NIGHT,
        checkout_date=date(2026, 10, 12), total_amount=Decimal("30001"), currency="JPY",
        version=2, actual_checkin_time=datetime(2026, 10, 10, 6, tzinfo=UTC))
    return {(ROOM, table_key(hotel, "R1").encode()): room,
            (STAY, table_key(hotel, "B1").encode()): stay}


def test_seed_facts_once_per_facts_version() -> None:
    """Stays and rooms only; nothing once the marker says this facts version was sent."""
    states = RestoredStates("test[0]")
    for key, state in _house("H1").items():
        dict.__setitem__(states, key, state.model_dump_json().encode())
    facts, marker = seed_facts(states)
    assert marker == {SEEDED: ReportsSeeded(facts_version=FACTS_VERSION)}
    sold = sorted((fact.day, fact.share.room_revenue) for fact in facts
                  if getattr(fact, "share", None) is not None and fact.share.sold)
    assert sold == [(NIGHT, Decimal("15001")), (date(2026, 10, 11), Decimal("15000"))]
    assert any(getattr(fact, "fact", "") == "room" for fact in facts)
    states.update(marker)
    assert seed_facts(states) == ([], {})
    states[SEEDED] = ReportsSeeded(facts_version=FACTS_VERSION - 1)
    assert seed_facts(states)[1], "an older facts version is sent again"


@pytest.mark.integration
async def test_a_worker_counts_what_its_state_log_held_before_reports(
    hub_settings: HubSettings, tmp_path: Path,
) -> None:
    own = isolated(hub_settings, "seed")
    # No ticks of its own: the facts topic then holds only what the processor sends.
    (worker,) = worker_group(own, "seed", tmp_path, count=1,
                             extra_env={"HOTELHUB_REPORT_TICK_S": "0"})
    app_id = worker.env["HOTELHUB_APP_ID"]
    hotel = new_hotel_id()
    settings = own.model_copy(update={"app_id": app_id})
    partition = hotel_partition(hotel, own.topic_partitions)
    producer = AIOKafkaProducer(bootstrap_servers=own.bootstrap_servers, **own.kafka_auth(),
                                acks="all")
    await producer.start()
    try:
        from streams.runners.admin import ensure_topics
        from streams.wire.topics import TopicSpec

        await ensure_topics(settings, [TopicSpec(state_topic(settings), own.topic_partitions,
                                                 {"cleanup.policy": "compact"})])
        for (tag, key), state in _house(hotel).items():
            await producer.send_and_wait(state_topic(settings), state.model_dump_json().encode(),
                                         key=state_key(tag, key), partition=partition)
    finally:
        await producer.stop()

    with stopped_at_exit(worker):
        async with aiohttp.ClientSession() as session:
            worker.start()

            async def day() -> dict[str, object] | None:
                assert worker.running(), worker.log_tail()
                try:
                    answer = await get(session, f"{worker.url}/reports/{hotel}/daily/{NIGHT}")
                except aiohttp.ClientError:
                    return None
                return answer.body["figures"] if answer.status == 200 else None

            figures = await poll(day, lambda found: found is not None
                                 and found["rooms_sold"] == 1, timeout_s=120, interval_s=0.5,
                                 what="the day's report from the state held before")
            assert figures is not None
            assert (figures["rooms_available"], Decimal(str(figures["room_revenue"]))) == (
                1, Decimal("15001"))
            sent = await _end(settings, partition)
            assert worker.stop() == 0, worker.log_tail()
            worker.start()
            await poll(day, lambda found: found is not None, timeout_s=120, interval_s=0.5,
                       what="serving again")
            assert await _end(settings, partition) == sent, "facts sent again after a restart"


async def _end(settings: HubSettings, partition: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(report_facts_topic(settings), partition)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()
