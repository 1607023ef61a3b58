"""A simulated month of two 120-room hotels in two time zones, through the real broker and
two real workers, against an independent calculation (`tests.support.report_oracle`).

Tokyo (JPY) and London (GBP; clocks go back on 2026-10-25) each get October 2026: bookings
weeks ahead, updates, cancellations, no-shows, early departures, out-of-order spells and
check-ins published hours late (`tests.support.month`). Half the month is published to
one worker, which is then restarted; a second worker joins before the rest. The figures
served by `GET /reports` and the reports sent on `hotel.analytics` must equal the oracle's
to the yen (and the penny), every report is sent once however many ticks and workers
there are, and a late change to a reported day is sent as a new version that supersedes
the first. The test's ticks carry their own clock (`now`), so nothing waits for 23:00.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.reports import Tick
from streams.core.kinds import POLICIES, EventKind, System
from streams.core.models import AnalyticsEvent
from streams.core.reports.document import report_id
from streams.core.reports.periods import Period, ReportPeriod
from streams.core.simulation import SimulatedEvent
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.partitioning import hotel_partition
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.hotel import new_hotel_id, publishers_of
from tests.support.http import get, poll
from tests.support.month import hotel_month
from tests.support.report_oracle import expected_report, periods_of_month
from tests.support.workers import WorkerProcess, isolated, stopped_at_exit, worker_group

pytestmark = pytest.mark.integration

FIRST = date(2026, 10, 1)
NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
"""The ticks' clock: every October report, and the dailies of 1 and 2 November, are due."""
ZONES = {"Asia/Tokyo": "JPY", "Europe/London": "GBP"}
FIGURES = ("rooms_available", "rooms_available_operational", "out_of_order_room_nights",
           "rooms_sold", "room_revenue", "other_revenue", "total_revenue", "occupancy_rate",
           "occupancy_rate_operational", "adr", "revpar", "guests", "arrivals",
           "arrival_nights", "average_stay_duration")


def _two_hotels(partitions: int) -> dict[str, str]:
    """Hotel id -> time zone; the two hotels in different partitions, so that two workers
    each own one of them."""
    tokyo = new_hotel_id()
    london = new_hotel_id()
    while hotel_partition(london, partitions) == hotel_partition(tokyo, partitions):
        london = new_hotel_id()
    return {tokyo: "Asia/Tokyo", london: "Europe/London"}


@pytest.fixture
def own_settings(hub_settings: HubSettings) -> HubSettings:
    return isolated(hub_settings, "reports")


@pytest.fixture
def hotels(own_settings: HubSettings) -> dict[str, str]:
    return _two_hotels(own_settings.topic_partitions)


@pytest.fixture
def workers(own_settings: HubSettings, hotels: dict[str, str], tmp_path: Path
            ) -> Iterator[tuple[WorkerProcess, ...]]:
    """Two workers of one group, ticking only when the test says (report_tick_s=0)."""
    zones = {hotel: zone for hotel, zone in hotels.items() if zone != "Asia/Tokyo"}
    group = worker_group(own_settings, "reports", tmp_path, count=2, extra_env={
        "HOTELHUB_REPORT_TICK_S": "0", "HOTELHUB_REPORT_CATCHUP_DAYS": "70",
        "HOTELHUB_HOTEL_TIMEZONES": json.dumps(zones)})
    with stopped_at_exit(*group):
        yield tuple(group)


def _months(hotels: dict[str, str]) -> dict[str, list[SimulatedEvent]]:
    return {hotel: hotel_month(hotel_id=hotel, timezone=zone, currency=ZONES[zone],
                               first=FIRST, seed=11) for hotel, zone in hotels.items()}


async def test_a_month_of_two_hotels_reports_like_the_oracle(
    own_settings: HubSettings, hotels: dict[str, str], workers: tuple[WorkerProcess, ...],
) -> None:
    months = _months(hotels)
    first, second = workers
    app_id = first.env["HOTELHUB_APP_ID"]
    async with aiohttp.ClientSession() as session, publishers_of(own_settings) as publishers:
        first.start()
        await _serving(session, first)
        house = {hotel: [item for item in events if item.document["type"] in ("room", "customer")]
                 for hotel, events in months.items()}
        rest = {hotel: [item for item in events if item not in house[hotel]]
                for hotel, events in months.items()}
        for hotel, events in house.items():
            await _publish(publishers, events)
            await _until(session, (first,), f"/rooms/{hotel}", lambda body: body["count"] == 120,
                         "the house of every hotel")
        halves = {hotel: len(events) // 2 for hotel, events in rest.items()}
        for hotel, events in rest.items():
            await _publish(publishers, events[:halves[hotel]])

        # A restart mid-month, then a second worker sharing the partitions.
        assert first.stop() == 0, first.log_tail()
        first.start()
        await _serving(session, first)
        second.start()
        await _serving(session, second)
        for hotel, events in rest.items():
            await _publish(publishers, events[halves[hotel]:])

        # Served figures, from either worker (one forwards to the other), as the oracle's.
        for hotel, zone in hotels.items():
            expected = _oracle(months[hotel], hotel, zone, ReportPeriod(Period.MONTHLY, FIRST))
            for worker in workers:
                await _until(session, (worker,), f"/reports/{hotel}/monthly/{FIRST}",
                             lambda body, want=expected: _same(body["figures"], want) is None,
                             f"the month of {hotel} as the oracle has it")

        async with _reports_sent(own_settings) as sent:
            # Both workers would tick every partition they own; tick each partition twice.
            await _tick(own_settings, app_id, NOW, times=2)
            expected_ids = {report_id(hotel, period) for hotel, zone in hotels.items()
                            for period in _due(zone)}
            await _quiet(sent, lambda: {r.data.report_id for r in sent} >= expected_ids)
            versions = [(r.data.report_id, r.data.version) for r in sent]
            assert len(versions) == len(set(versions)), "a report version was sent twice"
            assert {rid for rid, _ in versions} == expected_ids
            assert {version for _, version in versions} == {1}
            for report in sent:
                hotel = report.hotel_id
                period = ReportPeriod(Period(report.action.value.split("_")[0]),
                                      report.data.period_start)
                problem = _same(_figures_of(report), _oracle(months[hotel], hotel,
                                                             hotels[hotel], period))
                assert problem is None, f"{report.data.report_id}: {problem}"

            # A worker restarts and ticks again: nothing changed, nothing is sent.
            assert second.stop() == 0, second.log_tail()
            second.start()
            await _serving(session, second)
            await _tick(own_settings, app_id, NOW + timedelta(minutes=5), times=1)

            # A room of Tokyo reported out of order for 10 October after its reports went out:
            # the day, its week and the month are sent again as version 2, nothing else.
            tokyo = next(hotel for hotel, zone in hotels.items() if zone == "Asia/Tokyo")
            late = _late_repair(months[tokyo], date(2026, 10, 10))
            await _publish(publishers, [late])
            months[tokyo].append(late)
            day = ReportPeriod(Period.DAILY, date(2026, 10, 10))
            await _until(session, workers, f"/reports/{tokyo}/daily/{day.start}",
                         lambda body: body["figures"]["out_of_order_room_nights"]
                         == _oracle(months[tokyo], tokyo, "Asia/Tokyo", day)[
                             "out_of_order_room_nights"], "the late repair applied")
            before = len(sent)
            await _tick(own_settings, app_id, NOW + timedelta(minutes=10), times=1)
            corrected = {report_id(tokyo, ReportPeriod(Period.DAILY, day.start)),
                         report_id(tokyo, ReportPeriod(Period.WEEKLY, date(2026, 10, 4))),
                         report_id(tokyo, ReportPeriod(Period.MONTHLY, FIRST))}
            await _quiet(sent, lambda: len(sent) >= before + len(corrected))
            again = sent[before:]
            assert {r.data.report_id for r in again} == corrected, [r.data.report_id
                                                                    for r in again]
            firsts = {r.data.report_id: str(r.event_id) for r in sent[:before]}
            for report in again:
                assert report.data.version == 2
                assert report.data.supersedes == firsts[report.data.report_id]
                period = ReportPeriod(Period(report.action.value.split("_")[0]),
                                      report.data.period_start)
                problem = _same(_figures_of(report), _oracle(months[tokyo], tokyo,
                                                             "Asia/Tokyo", period))
                assert problem is None, f"{report.data.report_id} v2: {problem}"


def _due(zone: str) -> list[ReportPeriod]:
    """What falls due by NOW: October's reports, and the dailies of 1 and 2 November."""
    found = [ReportPeriod(Period(kind), start) for kind, start in periods_of_month(FIRST)]
    found += [ReportPeriod(Period.DAILY, date(2026, 11, day)) for day in (1, 2)]
    return [period for period in found if period.fires_at(zone) <= NOW]


def _oracle(events: list[SimulatedEvent], hotel: str, zone: str, period: ReportPeriod
            ) -> dict[str, Any]:
    return expected_report(events, hotel_id=hotel, timezone=zone, currency=ZONES[zone],
                           period=str(period.period), period_start=period.start)


def _same(found: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """None when every figure (hotel and per room type) equals the oracle's by value."""
    def differs(mine: Mapping[str, Any], theirs: Mapping[str, Any], scope: str) -> str | None:
        for name in FIGURES:
            if Decimal(str(mine[name])) != Decimal(str(theirs[name])):
                return f"{scope} {name}: hub {mine[name]}, oracle {theirs[name]}"
        return None

    problem = differs(found, expected, "hotel")
    if problem is not None:
        return problem
    if set(found["room_types"]) != set(expected["room_types"]):
        return f"room types {sorted(found['room_types'])} vs {sorted(expected['room_types'])}"
    for room_type, figures in expected["room_types"].items():
        problem = differs(found["room_types"][room_type], figures, room_type)
        if problem is not None:
            return problem
    return None


def _figures_of(report: AnalyticsEvent) -> dict[str, Any]:
    """A sent report's figures, in the oracle's names."""
    data, details = report.data, json.loads(report.data.detailed_data or "{}")
    return {
        **{name: getattr(data, name) for name in FIGURES
           if name not in ("guests", "arrival_nights")},
        "guests": data.customer_count, "arrival_nights": details["arrival_nights"],
        "room_types": details["room_types"],
    }


def _late_repair(events: list[SimulatedEvent], night: date) -> SimulatedEvent:
    """hotel-pms reports a room out of order for `night`, with the room's next version."""
    rooms = [item.document for item in events if item.document["type"] == "room"]
    room = rooms[0]["data"]
    version = max(doc["data"]["version"] for doc in rooms
                  if doc["data"]["room_id"] == room["room_id"]) + 1
    return SimulatedEvent(System.HOTEL_PMS, {
        "type": "room", "action": "maintenance_updated", "hotel_id": rooms[0]["hotel_id"],
        "occurred_at": datetime(2026, 11, 3, 9, tzinfo=UTC), "correlation_id": None,
        "data": {**room, "status": "out_of_order", "availability_date": night.isoformat(),
                 "maintenance_notes": "water damage found late", "version": version},
    })


async def _publish(publishers: Mapping[System, Any], events: list[SimulatedEvent]) -> None:
    for item in events:
        await publishers[item.system].publish_document(item.document)


async def _serving(session: aiohttp.ClientSession, worker: WorkerProcess) -> None:
    async def health() -> int:
        assert worker.running(), worker.log_tail()
        try:
            return (await get(session, f"{worker.url}/health")).status
        except aiohttp.ClientError:
            return 0

    await poll(health, lambda status: status == 200, timeout_s=120, interval_s=0.5,
               what=f"{worker.name} serving")


async def _until(session: aiohttp.ClientSession, workers: tuple[WorkerProcess, ...], path: str,
                 done: Any, what: str) -> None:
    async def ask() -> Any:
        for worker in workers:
            assert worker.running(), worker.log_tail()
        answer = await get(session, workers[0].url + path)
        return answer.body if answer.status == 200 else None

    try:
        await poll(ask, lambda body: body is not None and done(body), timeout_s=180,
                   interval_s=1, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + "\n".join(w.log_tail() for w in workers)) from None


async def _tick(settings: HubSettings, app_id: str, now: datetime, *, times: int) -> None:
    """What every worker's schedule writes, with the test's clock, into every partition."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(), acks="all")
    await producer.start()
    try:
        body = Tick(now=now).model_dump_json().encode()
        for _ in range(times):
            for partition in range(settings.topic_partitions):
                await producer.send_and_wait(f"{app_id}.report-facts", body, key=b"tick",
                                             partition=partition)
    finally:
        await producer.stop()


class _Sent(list[AnalyticsEvent]):
    """Reports read from the analytics topic so far, in the order read."""


@asynccontextmanager
async def _reports_sent(settings: HubSettings) -> AsyncIterator[_Sent]:
    """Every report sent on the test's analytics topic from the start, read as a system would."""
    sent = _Sent()
    topic = settings.topic(POLICIES[EventKind.ANALYTICS].topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(), isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(settings.topic_partitions)])
    async with SchemaRegistryClient(settings.registry_url) as registry:
        codec = ConfluentAvroCodec(registry)

        async def read() -> None:
            async for record in consumer:
                event = await codec.decode(EventKind.ANALYTICS, record.value or b"")
                assert isinstance(event, AnalyticsEvent)
                sent.append(event)

        task = asyncio.create_task(read())
        try:
            yield sent
        finally:
            task.cancel()
            await consumer.stop()


async def _quiet(sent: _Sent, enough: Any, *, quiet_s: float = 5, timeout_s: float = 120
                 ) -> None:
    """Until `enough()` holds and no report arrived for `quiet_s` (so a double would show)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    seen, still_since = -1, asyncio.get_running_loop().time()
    while True:
        now = asyncio.get_running_loop().time()
        if len(sent) != seen:
            seen, still_since = len(sent), now
        if enough() and now - still_since >= quiet_s:
            return
        assert now < deadline, f"{len(sent)} reports after {timeout_s:g} s"
        await asyncio.sleep(0.25)
