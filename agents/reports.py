"""Revenue and occupancy reports: Faust windowed tables of business days, sent when due.

The hotel processor writes, in the transaction of each event it decides, what the stays
and rooms it changed now contribute to each business day (`streams.core.reports.shares`)
to `<app>.report-facts`, in the hotel's partition. This agent keeps those contributions in
a windowed table (tumbling windows of one business day, placed by the day each fact is
about, not by when it was read), and sends each report as an AnalyticsEvent when it falls
due in the hotel's time zone (`streams.core.reports.periods`).

Sending happens in this agent, on the worker that owns the hotel's partition, when a tick
arrives in that partition: every worker ticks the partitions it owns at each due time and
every `report_tick_s`. The versions sent are a table of the same partition, so a report
goes out once however many workers run, and a day that changes after its report went out
gets a new version that supersedes the old one, never a silent change.

Facts are absolute (a stay's whole share of a day): the agent keeps each source's share
beside the day's totals and moves the totals by the difference, and the totals remember
the last fact they hold, so a fact read twice changes nothing and the tables stay right
under Faust's at-least-once delivery (`Reports.take_day`). The totals stay small however
many stays a day holds. A report version resent after
a crash between its send and its table write has the same event_id, for consumers to drop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from faust.types import EventT, StreamT
from faust.web import Request, Response
from mode import Service
from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from streams.core.kinds import System
from streams.core.query_params import BadQuery, EntityNotFound
from streams.core.reports.document import report_document, report_id
from streams.core.reports.figures import digest, report_figures
from streams.core.reports.periods import (
    Period,
    ReportPeriod,
    due,
    next_fire,
    period_of,
    periods_containing,
)
from streams.core.reports.requests import SendRequest as SendRequest
from streams.core.reports.requests import Tick as Tick
from streams.core.reports.shares import DayFact, DayTotals, RoomFact, fold
from streams.core.state import table_key
from streams.runners.publisher import HotelEventPublisher
from streams.wire.partitioning import hotel_partition
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.topics import report_facts_topic
from streams.worker.auth import Access
from streams.worker.hub import Hub
from streams.worker.views import TableQuery

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
TICK_KEY = b"tick"


Message = Annotated[DayFact | RoomFact | Tick | SendRequest, Field(discriminator="fact")]
MESSAGES: TypeAdapter[DayFact | RoomFact | Tick | SendRequest] = TypeAdapter(Message)


def day_timestamp(day: date) -> float:
    """Where a business day sits on the windows' time line: inside the day-long window
    that starts at its midnight (UTC, as Faust aligns windows to the epoch). The date was
    already taken in the hotel's time zone, so the window is that hotel's business day."""
    return datetime.combine(day, time(1), UTC).timestamp()


def _fact_timestamp(event: EventT[Any] | None) -> float:
    if event is None:
        raise RuntimeError("a report day is written only while reading a fact")
    return day_timestamp(date.fromisoformat(json.loads(event.value)["day"]))


@dataclass
class Reports:
    """The report tables of one worker, and how a report is built and sent from them."""

    hub: Hub
    days: Any
    """Windowed by business day: `totals|hotel_id:room_type` -> {"offset", "totals": DayTotals}
    and `share|hotel_id:room_type|source` -> the DayShare that source put in the totals (to
    take out again when its share changes; {} when it has none)."""
    supply: Any
    """hotel_id:room_type -> room_id -> first day in the house (ISO)."""
    hotels: Any
    """hotel_id -> {"first": first business day (ISO), "types": [room types]}."""
    sent: Any
    """report_id -> {"version", "event_id", "digest", "sent_at"} of the last version sent."""
    changed: Any
    """hotel_id -> days (ISO) whose figures changed since the hotel's last tick."""
    publisher: HotelEventPublisher
    facts: Any
    """The facts topic: ticks and send requests go in the partition of the hotels they name."""

    # -- facts in ------------------------------------------------------------------

    def take_day(self, fact: DayFact, offset: int) -> None:
        """Put a source's new share of a day in place of its old one, in the day's totals.

        Totals and shares are keys of one table, so their changelog records share a
        partition and keep their order: the totals are written first, and carry the offset
        of the last fact in them. A fact read again (a redelivery, after a crash between
        the two writes) moves the totals only if they do not hold it yet, and writes both
        again, so the changelog ends as if it had been read once."""
        key = table_key(fact.hotel_id, fact.room_type)
        totals_key, share_key = f"totals|{key}", f"share|{key}|{fact.source}"
        totals, share = fold(self.days[totals_key].value(), self.days[share_key].value(),
                             fact.share, offset)
        self.days[totals_key] = totals
        self.days[share_key] = share
        self._note_hotel(fact.hotel_id, fact.room_type, fact.day)
        marked = self.changed.get(fact.hotel_id) or []
        if fact.day.isoformat() not in marked:
            self.changed[fact.hotel_id] = sorted({*marked, fact.day.isoformat()})

    def take_room(self, fact: RoomFact) -> None:
        key = table_key(fact.hotel_id, fact.room_type)
        rooms = dict(self.supply.get(key) or {})
        if fact.since is None:
            rooms.pop(fact.room_id, None)
        else:
            rooms[fact.room_id] = fact.since.isoformat()
        self.supply[key] = rooms
        if fact.since is not None:
            self._note_hotel(fact.hotel_id, fact.room_type, fact.since)

    def _note_hotel(self, hotel_id: str, room_type: str, day: date) -> None:
        known = self.hotels.get(hotel_id) or {}
        first = min(day.isoformat(), known.get("first", day.isoformat()))
        types = sorted({*known.get("types", []), room_type})
        if known != {"first": first, "types": types}:
            self.hotels[hotel_id] = {"first": first, "types": types}

    # -- reports out ---------------------------------------------------------------

    async def request(self, hotel_id: str, period: Period | str, day: date) -> None:
        """Have the owner of `hotel_id` send the report of the period holding `day` now
        (a new version only if its figures changed), after every fact already written."""
        asked = period_of(period, day)
        body = SendRequest(hotel_id=hotel_id, period=asked.period, start=asked.start)
        await self.facts.send(key=hotel_id.encode(), value=body.model_dump_json().encode(),
                              partition=hotel_partition(hotel_id,
                                                        self.hub.settings.topic_partitions))

    def knows(self, hotel_id: str) -> bool:
        return self.hotels.get(hotel_id) is not None

    def figures(self, hotel_id: str, period: ReportPeriod) -> dict[str, Any]:
        known = self.hotels.get(hotel_id) or {"types": []}
        types = known["types"]
        days = {day: {room_type: self._totals(hotel_id, room_type, day) for room_type in types}
                for day in period.days}
        supply = {room_type: {room: date.fromisoformat(since) for room, since in (
            self.supply.get(table_key(hotel_id, room_type)) or {}).items()}
            for room_type in types}
        return report_figures(hotel_id, period, days, supply,
                              default_currency=self.hub.settings.default_currency)

    def _totals(self, hotel_id: str, room_type: str, day: date) -> DayTotals:
        on_day = self.days.relative_to(day_timestamp(day))
        stored = on_day[f"totals|{table_key(hotel_id, room_type)}"].value()
        return DayTotals.model_validate(stored.get("totals", {}))

    async def tick(self, now: datetime, partition: int) -> None:
        """Send every report of this partition's hotels that is due and not sent, and a new
        version of every report sent whose days changed since."""
        partitions = self.hub.settings.topic_partitions
        for hotel_id in sorted(self.hotels.keys()):
            if hotel_partition(hotel_id, partitions) != partition:
                continue
            zone = self.hub.rules.timezone_of(hotel_id)
            first = date.fromisoformat(self.hotels[hotel_id]["first"])
            catchup = timedelta(days=self.hub.settings.report_catchup_days)
            wanted = due(zone, after=now - catchup, until=now, first_day=first)
            marked = self.changed.get(hotel_id) or []
            for day in marked:
                for period in periods_containing(date.fromisoformat(day)):
                    if (period not in wanted and period.fires_at(zone) <= now
                            and self.sent.get(report_id(hotel_id, period)) is not None):
                        wanted.append(period)
            for period in wanted:
                if (self.sent.get(report_id(hotel_id, period)) is not None
                        and not _touches(period, marked)):
                    continue
                await self.send(hotel_id, period, now)
            if marked:
                self.changed[hotel_id] = []

    async def send(self, hotel_id: str, period: ReportPeriod, now: datetime) -> int | None:
        """Send `period`'s report unless the version sent last has the same figures; the
        version sent, or None."""
        rid = report_id(hotel_id, period)
        figures = self.figures(hotel_id, period)
        fingerprint = digest(figures)
        previous = self.sent.get(rid)
        if previous is not None and previous["digest"] == fingerprint:
            return None
        version = previous["version"] + 1 if previous is not None else 1
        document = report_document(
            figures, period, timezone=self.hub.rules.timezone_of(hotel_id), version=version,
            supersedes=previous["event_id"] if previous is not None else None,
            generated_at=now)
        await self.publisher.publish_document(document)
        self.sent[rid] = {"version": version, "event_id": document["event_id"],
                          "digest": fingerprint, "sent_at": now.isoformat()}
        log.info("report %s version %d sent", rid, version)
        return version


def _touches(period: ReportPeriod, days: list[str]) -> bool:
    return any(period.start <= date.fromisoformat(day) <= period.end for day in days)


class ReportQuery(TableQuery):
    """`GET /reports/{hotel_id}/{period}/{date}`: the current figures of the daily, weekly
    or monthly report whose period holds `date`, and the version last sent, if any."""

    reports: Reports

    async def answer(self, request: Request, params: Mapping[str, str]) -> Response:
        hotel_id = params["hotel_id"]
        try:
            period = period_of(params["period"], date.fromisoformat(params["date"]))
        except ValueError:
            raise BadQuery(f"period must be one of {', '.join(Period)} and date an ISO date "
                           f"(YYYY-MM-DD): got {params['period']!r}, {params['date']!r}"
                           ) from None
        forwarded = await self.elsewhere(request, self.reports.days.table, hotel_id)
        if forwarded is not None:
            return forwarded
        if not self.reports.knows(hotel_id):
            raise EntityNotFound(f"no report data for hotel {hotel_id}: none of its stays or "
                                 "rooms has reached the hub")
        rid, zone = report_id(hotel_id, period), self.reports.hub.rules.timezone_of(hotel_id)
        return self.answer_json({
            "report_id": rid, "timezone": zone, "due_at": period.fires_at(zone),
            "figures": to_jsonable_python(self.reports.figures(hotel_id, period)),
            "sent": self.reports.sent.get(rid),
        })


def install(hub: Hub) -> Reports:
    app, settings = hub.app, hub.settings
    partitions = settings.topic_partitions
    facts = app.topic(report_facts_topic(settings), key_type=bytes, key_serializer="raw",
                      value_type=bytes, value_serializer="raw", partitions=partitions,
                      internal=True)

    def table(name: str, help: str) -> Any:
        # No key or value type: Faust (de)serialises keys and values as JSON.
        return app.Table(name, default=None, partitions=partitions, help=help)

    def day_table(name: str, help: str) -> Any:
        windowed = app.Table(name, default=dict, partitions=partitions, help=help).tumbling(
            DAY, expires=timedelta(days=settings.report_retention_days))
        return windowed.clone(relative_to=_fact_timestamp)

    reports = Reports(
        hub=hub,
        days=day_table("report_days", "per business day: totals of hotel_id:room_type, "
                       "and each source's share in them"),
        supply=table("report_supply", "hotel_id:room_type -> room_id -> in the house since"),
        hotels=table("report_hotels", "hotel_id -> first business day, room types"),
        sent=table("report_versions", "report_id -> last version sent"),
        changed=table("report_changes", "hotel_id -> days changed since the last tick"),
        publisher=HotelEventPublisher(system=System.HOTEL_HUB,
                                      registry=SchemaRegistryClient.from_settings(settings),
                                      settings=settings),
        facts=facts,
    )

    @app.agent(facts, name="agents.reports.report_days")
    async def report_days(stream: StreamT[bytes]) -> AsyncIterator[str]:
        async for event in stream.events():
            try:
                message = MESSAGES.validate_json(event.value)
            except ValidationError as exc:
                log.error("report fact %s[%d]@%d is not readable, passed over: %s",
                          event.message.topic, event.message.partition, event.message.offset,
                          exc)
                continue
            if isinstance(message, DayFact):
                reports.take_day(message, event.message.offset)
            elif isinstance(message, RoomFact):
                reports.take_room(message)
            elif isinstance(message, Tick):
                await reports.tick(message.now, event.message.partition)
            elif reports.knows(message.hotel_id):
                await reports.send(message.hotel_id, period_of(message.period, message.start),
                                   datetime.now(UTC))
            else:
                log.warning("report of %s asked for, but none of its stays or rooms has "
                            "reached this hub: nothing sent", message.hotel_id)
            yield message.fact

    zones = {settings.timezone, *settings.hotel_timezones.values()}

    class ReportSchedule(Service):
        """Starts the reports' publisher; ticks this worker's partitions when a report falls
        due in any hotel's time zone, and every `report_tick_s` for corrections."""

        async def on_start(self) -> None:
            await reports.publisher.start()

        async def on_stop(self) -> None:
            await reports.publisher.stop()

        @Service.task
        async def _ticking(self) -> None:
            if settings.report_tick_s <= 0:
                return
            while not self.should_stop:
                now = datetime.now(UTC)
                wake = min(next_fire(zones, now) + timedelta(seconds=0.5),
                           now + timedelta(seconds=settings.report_tick_s))
                await self.sleep((wake - now).total_seconds())
                await send_ticks(datetime.now(UTC))

    async def send_ticks(now: datetime) -> None:
        topic = facts.get_topic_name()
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
        body = Tick(now=now).model_dump_json().encode()
        for partition in sorted(owned):
            await facts.send(key=TICK_KEY, value=body, partition=partition)

    app.service(ReportSchedule)
    hub.pages.append(("/reports/{hotel_id}/{period}/{date}", Access.HOTEL,
                      type("ReportQuery", (ReportQuery,), {"reports": reports})))
    return reports
