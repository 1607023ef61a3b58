"""`hotelhub demo`: the hub and a gateway in this process, one simulated hotel day pushed
through them, and what a WebSocket client and a webhook receiver got of it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from prometheus_client import REGISTRY
from rich.console import Console
from rich.table import Table

from streams.cli.demo_feeds import demo_feeds
from streams.cli.demo_storage import stored_events
from streams.cli.events import console, guard
from streams.cli.history import show_records
from streams.core.exceptions import HubError
from streams.core.kinds import EventKind
from streams.core.models import CheckinCheckoutAction, CheckinCheckoutEvent, RefusalReason
from streams.core.rules import derived_id
from streams.core.simulation import hotel_day
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings, get_settings
from streams.wire.registry_client import SchemaRegistryClient

if TYPE_CHECKING:
    from streams.worker.hub import Hub  # the worker (and Faust) load with the demo
    from streams.worker.tables import Tables


def demo(
    day: Annotated[str | None, typer.Option(help="ISO date of the simulated day")] = None,
    timeout_s: Annotated[float, typer.Option(help="Give up waiting after this long")] = 120,
) -> None:
    """Run the hub in this process and push one simulated hotel day through it."""
    settings = get_settings()
    the_day = date.fromisoformat(day) if day else datetime.now(ZoneInfo(settings.timezone)).date()
    started = time.monotonic()
    processed, summary, booking = guard(
        lambda: asyncio.run(_run(settings, the_day, timeout_s)))
    out = Console()
    table = Table(title=f"Simulated day {the_day} at {settings.default_hotel_id}")
    table.add_column("kind")
    table.add_column("processed", justify="right")
    for kind in EventKind:
        table.add_row(kind.value, str(processed.get(kind.value, 0)))
    out.print(table)
    for view in summary:
        out.print(view)
    if booking is not None:
        show_records(booking[1], title=f"From the Event Storage: the chain of booking "
                     f"{booking[0]} (hotelhub events --chain {booking[0]})")
    out.print(f"{sum(processed.values())} events through the hub in "
              f"{time.monotonic() - started:.1f} s (room events include the hub's own, "
              "derived from check-in and check-out)")


async def _run(settings: HubSettings, the_day: date, timeout_s: float
               ) -> tuple[Counter[str], list[Table], tuple[str, list[dict[str, Any]]] | None]:
    from streams.worker.run import running_hub

    simulated = hotel_day(day=the_day, hotel_id=settings.default_hotel_id,
                          timezone=settings.timezone, currency=settings.default_currency)
    published: set[str] = set()
    derived: set[str] = set()
    house: set[str] = set()
    processed: Counter[str] = Counter()
    all_published, all_derived, house_ready = asyncio.Event(), asyncio.Event(), asyncio.Event()

    reports: asyncio.Queue[Any] = asyncio.Queue()

    def count(event: Any) -> None:
        if event.type is EventKind.ANALYTICS:
            reports.put_nowait(event)
        event_id = str(event.event_id)
        house.discard(event_id)
        if not house:
            house_ready.set()
        for waiting, finished in ((published, all_published), (derived, all_derived)):
            if event_id in waiting:
                processed[str(event.type)] += 1
                waiting.discard(event_id)
                if not waiting:
                    finished.set()

    async with (running_hub(settings, sinks=[count]) as hub,
                SchemaRegistryClient.from_settings(settings) as registry,
                demo_feeds(settings) as feeds,
                stored_events(settings) as storage):
        publishers = {system: HotelEventPublisher(system=system, registry=registry,
                                                  settings=settings)
                      for system in {item.system for item in simulated}}
        # Every id the agents will report, before the first is sent: otherwise a fast
        # worker could empty the set while publishing is still going on.
        events = [(publishers[item.system], publishers[item.system].build(item.document))
                  for item in simulated]
        for _, event in events:
            published.add(str(event.event_id))
            if (isinstance(event, CheckinCheckoutEvent)
                    and event.action is not CheckinCheckoutAction.NO_SHOW):
                derived.add(str(derived_id(event.event_id, "room-status")))
        derived_ids = set(derived)
        # The house first: a booking for a room type the hub has not seen is refused, and
        # events of different rooms and stays have no order between their partitions.
        first = next(index for index, (_, event) in enumerate(events)
                     if event.type not in (EventKind.ROOM, EventKind.CUSTOMER))
        house.update(str(event.event_id) for _, event in events[:first])
        try:
            for publisher in publishers.values():
                await publisher.start()
            for publisher, event in events[:first]:
                await publisher.send(event)
            await asyncio.wait_for(house_ready.wait(), timeout=timeout_s)
            for publisher, event in events[first:]:
                await publisher.send(event)
            console.print(f"published {len(simulated)} events of {the_day}; waiting for agents")
            await asyncio.wait_for(all_published.wait(), timeout=timeout_s)
            # Room status follows each check-in in the same transaction; a rerun of the
            # same day refuses the check-ins as already done and derives nothing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_derived.wait(), timeout=2)
        except TimeoutError as exc:
            raise HubError(f"the agents did not process the day within {timeout_s:g} s; "
                           "is the worker's broker healthy (hotelhub broker status)?") from exc
        finally:
            for publisher in publishers.values():
                await publisher.stop()
        summary = _summarise(hub.tables, settings.default_hotel_id, the_day)
        summary.append(await _daily_report(hub, settings, the_day, reports))
        await feeds.settle()
        summary.append(feeds.table())
        # Derived room events the agents reported (a rerun of a day derives none).
        day_ids = {str(event.event_id) for _, event in events} | (derived_ids - derived)
        await storage.holding(day_ids, timeout_s=timeout_s)
        arrival = next((event for _, event in events if isinstance(event, CheckinCheckoutEvent)
                        and event.action is CheckinCheckoutAction.CHECKED_IN), None)
        booking = None
        if arrival is not None:
            # This run's records of the chain (a rerun of a day adds its own copies).
            chained = await storage.chain(arrival.data.reservation_id)
            booking = (arrival.data.reservation_id,
                       [row for row in chained
                        if row["record_id"] in day_ids or row["event_id"] in day_ids])
        return processed, summary, booking


def _summarise(tables: Tables, hotel_id: str, the_day: date) -> list[Table]:
    """What the day left in the tables (this worker owns every partition here)."""
    from streams.core.mirrored import states
    from streams.core.state import AvailabilityState, ReservationState, RoomState

    prefix = f"{hotel_id}:".encode()
    rooms = Counter(RoomState.model_validate_json(value).status.value
                    for key, value in states(tables.rooms) if key.startswith(prefix))
    stays = Counter(str(ReservationState.model_validate_json(value).status)
                    for key, value in states(tables.stays) if key.startswith(prefix))
    tonight = Table(title=f"Availability for the night of {the_day}")
    for column in ("room type", "in house", "sold", "out of order", "free"):
        tonight.add_column(column, justify="left" if column == "room type" else "right")
    for key, value in sorted(states(tables.availability)):
        if key.startswith(prefix):
            state = AvailabilityState.model_validate_json(value)
            night = state.night(the_day)
            tonight.add_row(state.room_type, *(str(night[name]) for name in
                                               ("in_house", "sold", "out_of_order", "free")))
    refused = {reason.value: REGISTRY.get_sample_value("hotelhub_refusals_total",
                                                       {"reason": reason.value}) or 0
               for reason in RefusalReason}
    return [_counts("Rooms by status", rooms), _counts("Stays by status", stays), tonight,
            _counts("Refused events (a rerun of a day refuses its stale versions)",
                    Counter({reason: int(n) for reason, n in refused.items() if n}))]


async def _daily_report(hub: Hub, settings: HubSettings, the_day: date,
                        sent: asyncio.Queue[Any], timeout_s: float = 20) -> Table:
    """The hub's report of the day, asked for now rather than at 23:00: every fact of the day
    is in its partition before the request, so the report holds the whole day. A rerun of a
    day changes no figure, so nothing new is sent: the version sent before is shown."""
    from streams.cli.report import hotel_table
    from streams.core.reports.document import report_id
    from streams.core.reports.figures import digest
    from streams.core.reports.periods import Period, period_of

    hotel_id, reports = settings.default_hotel_id, hub.installed["reports"]
    period = period_of(Period.DAILY, the_day)
    wanted = report_id(hotel_id, period)
    await reports.request(hotel_id, Period.DAILY, the_day)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        while not sent.empty():
            event = sent.get_nowait()
            if event.data.report_id == wanted:
                figures = {**event.data.model_dump(), "guests": event.data.customer_count}
                return hotel_table(f"Daily report of {the_day} at {hotel_id} in "
                                   f"{event.data.currency}: version {event.data.version}, "
                                   "sent on hotel.analytics", figures)
        last = reports.sent.get(wanted)
        figures = reports.figures(hotel_id, period)
        if last is not None and last["digest"] == digest(figures):
            return hotel_table(f"Daily report of {the_day} at {hotel_id} in "
                               f"{figures['currency']}: unchanged since version "
                               f"{last['version']} was sent", figures)
        await asyncio.sleep(0.2)
    raise HubError(f"the report of {the_day} was not sent within {timeout_s:g} s")


def _counts(title: str, counts: Counter[str]) -> Table:
    table = Table(title=title)
    table.add_column("status", no_wrap=True)
    table.add_column("count", justify="right")
    for name, count in sorted(counts.items()):
        table.add_row(name, str(count))
    return table
