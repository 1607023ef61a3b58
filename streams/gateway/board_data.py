"""What the live board shows of one hotel, gathered for one caller.

Rooms and the day's stays are the worker's (its query API, asked as the gateway's own
identity once the caller was found to see the hotel); refusals of the day and dead letters
are read from Kafka with the readers the rest of the hub uses. A part that cannot be had
says why (`problem`) instead of failing the page. The Kafka reads are kept a few seconds
per hotel, so boards refreshing every few seconds do not each start consumers.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as clock
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
from aiokafka.errors import KafkaError

from streams.core.exceptions import CodecError, HubError
from streams.core.identities import basic_header
from streams.core.kinds import REFUSAL_TOPIC
from streams.gateway.callers import Caller
from streams.gateway.deadletters import read_dead_letters
from streams.gateway.feed import Feed
from streams.gateway.messages import MessageReader
from streams.runners.dead_letters import read_hub_dead_letters
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map

T = TypeVar("T")
WORKER_TIMEOUT_S = 3.0
KAFKA_TIMEOUT_S = 10.0
CACHE_S = 3.0
"""How long a hotel's refusals and dead letters read from Kafka are shown again."""
OCCUPIED = frozenset({"occupied_clean", "occupied_dirty"})
OUT = frozenset({"out_of_order", "out_of_service"})
_LEADING_DIGITS = re.compile(r"^[0-9]+")


@dataclass
class Part:
    """One panel's data, or why there is none."""

    items: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None


@dataclass
class Board:
    hotel_id: str
    day: date
    timezone: str
    generated_at: str
    rooms: Part
    arrivals: Part
    departures: Part
    refusals: Part
    hub_dead_letters: Part
    webhook_dead_letters: Part
    kpis: dict[str, Any] = field(default_factory=dict)


def floor_of(room_number: str) -> str:
    """The floor a room number says: its leading digits but the last two (305 -> 3, 1204 ->
    12); numbers of one or two digits are the ground floor (0), others "other"."""
    digits = _LEADING_DIGITS.match(room_number)
    if digits is None:
        return "other"
    return str(int(digits[0][:-2] or "0"))


def hotel_day(settings: HubSettings, hotel_id: str, now: datetime | None = None) -> date:
    """Today in the hotel's own time zone (its arrivals and departures are of that day)."""
    zone = ZoneInfo(settings.rules().timezone_of(hotel_id))
    return (now or datetime.now(UTC)).astimezone(zone).date()


def kpis(rooms: Part, arrivals: Part, departures: Part, refusals: Part,
         dead_letters: int | None) -> dict[str, Any]:
    """The day's figures; None where their panel had no data (never a guessed zero)."""
    found: dict[str, Any] = {}
    if rooms.problem is None:
        statuses = [room["status"] for room in rooms.items]
        out = sum(status in OUT for status in statuses)
        sellable = len(statuses) - out
        occupied = sum(status in OCCUPIED for status in statuses)
        found |= {
            "rooms": len(statuses), "sellable": sellable, "occupied": occupied,
            "occupancy_pct": round(100 * occupied / sellable, 1) if sellable else None,
            "out_of_order": sum(status == "out_of_order" for status in statuses),
            "out_of_service": sum(status == "out_of_service" for status in statuses),
            "dirty": sum(status in ("vacant_dirty", "occupied_dirty") for status in statuses),
            "ready": sum(status in ("vacant_clean", "inspected") for status in statuses),
        }
    if arrivals.problem is None:
        live = [stay for stay in arrivals.items if stay.get("status") != "cancelled"]
        found |= {
            "arrivals_expected": len(live),
            "arrived": sum(stay.get("status") in ("checked_in", "checked_out") for stay in live),
            "no_shows": sum(stay.get("status") == "no_show" for stay in live),
        }
    if departures.problem is None:
        leaving = [stay for stay in departures.items
                   if stay.get("status") not in ("cancelled", "no_show")]
        found |= {
            "departures_expected": len(leaving),
            "departed": sum(stay.get("status") == "checked_out" for stay in leaving),
        }
    if refusals.problem is None:
        found["refusals"] = len(refusals.items)
    if dead_letters is not None:
        found["dead_letters"] = dead_letters
    return found


class WorkerClient:
    """The worker's query API, asked as the gateway's own identity."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.url = (settings.worker_url or f"http://127.0.0.1:{settings.web_port}").rstrip("/")

    async def listing(self, client: httpx.AsyncClient, path: str, key: str) -> Part:
        found = self.settings.credentials()
        headers = {} if found is None else {"Authorization": basic_header(*found)}
        try:
            answer = await client.get(self.url + path, headers=headers,
                                      timeout=WORKER_TIMEOUT_S)
        except httpx.HTTPError as exc:
            return Part(problem=f"worker unavailable at {self.url} ({type(exc).__name__})")
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200:
            detail = body.get("detail") if isinstance(body, dict) else None
            return Part(problem=f"worker unavailable: {answer.status_code} "
                        f"{detail or answer.reason_phrase}")
        return Part(items=list(body.get(key, [])))


class BoardSources:
    """Gathers a `Board`; one per gateway (it keeps the Kafka reads a moment)."""

    def __init__(self, settings: HubSettings, reader: MessageReader) -> None:
        self.settings, self.reader = settings, reader
        self.worker = WorkerClient(settings)
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    async def gather(self, caller: Caller, hotel_id: str, now: datetime | None = None) -> Board:
        moment = now or datetime.now(UTC)
        day = hotel_day(self.settings, hotel_id, moment)
        async with httpx.AsyncClient() as http:
            parts = await asyncio.gather(
                self.worker.listing(http, f"/rooms/{hotel_id}", "rooms"),
                self.worker.listing(http, f"/reservations/{hotel_id}?arriving={day}",
                                    "reservations"),
                self.worker.listing(http, f"/reservations/{hotel_id}?departing={day}",
                                    "reservations"),
                self._refusals(caller, hotel_id, day),
                self._hub_dead_letters(caller, hotel_id),
                self._webhook_dead_letters(caller, hotel_id))
        rooms, arrivals, departures, refusals, hub_letters, hook_letters = parts
        waiting = None if hook_letters.problem else len(hook_letters.items) + (
            0 if hub_letters.problem else len(hub_letters.items))
        return Board(
            hotel_id=hotel_id, day=day, timezone=self.settings.rules().timezone_of(hotel_id),
            generated_at=moment.isoformat(), rooms=rooms, arrivals=arrivals,
            departures=departures, refusals=refusals, hub_dead_letters=hub_letters,
            webhook_dead_letters=hook_letters,
            kpis=kpis(rooms, arrivals, departures, refusals, waiting))

    async def _cached(self, what: str, hotel_id: str, read: Callable[[], Awaitable[T]]) -> T:
        key = (what, hotel_id)
        kept = self._cache.get(key)
        if kept is not None and time.monotonic() - kept[0] < CACHE_S:
            found: T = kept[1]
            return found
        value = await asyncio.wait_for(read(), KAFKA_TIMEOUT_S)
        self._cache[key] = (time.monotonic(), value)
        return value

    async def _refusals(self, caller: Caller, hotel_id: str, day: date) -> Part:
        """The hotel's refusals of the day that `caller` may have (a system: of its own
        events), newest first."""
        zone = ZoneInfo(self.settings.rules().timezone_of(hotel_id))
        since = datetime.combine(day, clock(), zone)

        async def read() -> list[tuple[Any, dict[str, Any]]]:
            topic = self.settings.topic(REFUSAL_TOPIC)
            feed = Feed(self.settings, [topic])
            await feed.start(since=since)
            found = []
            try:
                async for record in feed.to_end():
                    routing = self.reader.routing(record.topic, record.headers)
                    if record.value is None or (routing is not None
                                                and routing.hotel_id != hotel_id):
                        continue
                    try:
                        outgoing = await self.reader.outgoing(record.topic, record.key,
                                                              record.value, routing)
                    except CodecError:
                        continue
                    if outgoing.routing.hotel_id == hotel_id:
                        found.append((outgoing.routing, json.loads(outgoing.body)))
            finally:
                await feed.stop()
            return found

        try:
            every = await self._cached("refusals", hotel_id, read)
        except (KafkaError, HubError, TimeoutError) as exc:
            return Part(problem=f"refusals unavailable ({type(exc).__name__})")
        mine = [message["data"] for routing, message in every if caller.admits(routing)]
        return Part(items=sorted(mine, key=lambda refusal: refusal["refused_at"],
                                 reverse=True))

    async def _hub_dead_letters(self, caller: Caller, hotel_id: str) -> Part:
        """The hub's dead letters of the hotel still in the topic (`hotelhub deadletter
        list`); the operator's and the hub's business only."""
        if not caller.sees_everything:
            return Part(problem="shown to the operator only")

        async def read() -> list[dict[str, Any]]:
            letters = await read_hub_dead_letters(self.settings, stall_s=KAFKA_TIMEOUT_S)
            prefix = f"{hotel_id}:".encode()
            return [{"time": letter.time.isoformat(), "source_topic": letter.source_topic,
                     "reason": letter.reason[:200]}
                    for letter in letters
                    if header_map(letter.original_headers).get("ce_hotelid") == hotel_id
                    or (letter.key or b"").startswith(prefix)]

        try:
            return Part(items=list(reversed(await self._cached("hub", hotel_id, read))))
        except (KafkaError, HubError, TimeoutError) as exc:
            return Part(problem=f"dead letters unavailable ({type(exc).__name__})")

    async def _webhook_dead_letters(self, caller: Caller, hotel_id: str) -> Part:
        """Webhook deliveries of the hotel's events that ended in the webhook dead-letter
        topic, to replay; a system sees its own endpoints'."""
        async def read() -> list[dict[str, Any]]:
            letters = await read_dead_letters(self.settings, None)
            return [{"time": letter.dead_at, "system": letter.system,
                     "reason": str(letter.reason), "type": letter.event.get("type", "")}
                    for letter in letters if letter.event.get("hotelid") == hotel_id]

        try:
            every = await self._cached("webhooks", hotel_id, read)
        except (KafkaError, HubError, TimeoutError) as exc:
            return Part(problem=f"webhook dead letters unavailable ({type(exc).__name__})")
        return Part(items=[letter for letter in reversed(every)
                           if caller.sees_everything or letter["system"] == caller.name])
