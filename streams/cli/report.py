"""`hotelhub report daily|weekly|monthly --hotel H --date YYYY-MM-DD`: a hotel's report.

Without `--send` the command asks a worker's query API (`GET /reports/{hotel}/{period}/
{date}`; any worker answers, forwarding to the owner of the hotel's partition) for the
current figures of the report whose period holds the date, and prints them with the
per-room-type breakdown, or the JSON as served with `--json`.

With `--send` it writes a send request (`streams.core.reports.requests.SendRequest`) to the
hotel's partition of `<app_id>.report-facts`, behind every fact already written there, so
the worker owning that partition sends the report now: a new version if its figures
changed since the version last sent, nothing otherwise.

Both act as the operator identity (HTTP Basic to the query API, SASL to Kafka) unless
HOTELHUB_IDENTITY names another. Bad input and unreachable services are one line on
stderr and exit 2, as `hotelhub publish`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from rich.console import Console
from rich.table import Table

from streams.cli.events import guard
from streams.core.exceptions import BrokerUnavailable, ConfigurationError, HubError
from streams.core.reports.money import to_currency
from streams.core.reports.periods import Period, ReportPeriod, period_of
from streams.core.reports.requests import SendRequest
from streams.runners.admin import admin_client
from streams.settings import HubSettings, get_settings
from streams.wire.partitioning import hotel_partition
from streams.wire.topics import report_facts_topic
from streams.worker.auth import authorization

out = Console(soft_wrap=True, highlight=False)

ROOM_TYPE_COLUMNS = (
    ("rooms_available", "supply", "count"),
    ("out_of_order_room_nights", "OOO", "count"),
    ("rooms_sold", "sold", "count"),
    ("occupancy_rate", "occ.", "rate"),
    ("adr", "ADR", "money"),
    ("revpar", "RevPAR", "money"),
    ("room_revenue", "room rev.", "money"),
    ("other_revenue", "other rev.", "money"),
    ("total_revenue", "total rev.", "money"),
    ("guests", "guests", "count"),
    ("arrivals", "arr.", "count"),
)
"""Room-type table: figure, column heading, how it is shown."""
HOTEL_ROWS = (
    ("rooms_available", "rooms available (supply)", "count"),
    ("rooms_available_operational", "rooms available, less out of order", "count"),
    ("out_of_order_room_nights", "out-of-order room-nights", "count"),
    ("rooms_sold", "room-nights sold", "count"),
    ("occupancy_rate", "occupancy", "rate"),
    ("occupancy_rate_operational", "occupancy, less out of order", "rate"),
    ("adr", "ADR", "money"),
    ("revpar", "RevPAR", "money"),
    ("room_revenue", "room revenue", "money"),
    ("other_revenue", "other revenue", "money"),
    ("total_revenue", "total revenue", "money"),
    ("guests", "guests in house", "count"),
    ("arrivals", "arrivals", "count"),
    ("average_stay_duration", "average length of stay (nights)", "plain"),
    ("rooms_on_the_books", "room-nights on the books", "count"),
    ("room_revenue_on_the_books", "room revenue on the books", "money"),
)


class ReportCommandError(HubError):
    """What the command could not do, in one line."""


def report(
    period: Annotated[str, typer.Argument(help="daily, weekly or monthly",
                                          show_default=False)],
    hotel: Annotated[str, typer.Option("--hotel", help="Hotel id, e.g. HTL-TYO-01")],
    day: Annotated[str, typer.Option("--date", help="A day of the period (YYYY-MM-DD), in "
                                     "the hotel's business days")],
    send: Annotated[bool, typer.Option("--send", help="Have the worker owning the hotel "
                                       "send this report now (a new version only if its "
                                       "figures changed)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON as served (with "
                                          "--send: the request written)")] = False,
    url: Annotated[str | None, typer.Option("--url", help="A worker's query API (default "
                                            "http://HOTELHUB_WEB_HOST:HOTELHUB_WEB_PORT)")
                   ] = None,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="Give up on the worker or "
                                             "the broker after this long")] = 10.0,
) -> None:
    """A hotel's revenue and occupancy report: the current figures, or send it now."""
    asked = guard(lambda: _period(period, day, hotel))
    settings = get_settings().acting_as("operator")
    if send:
        where = guard(lambda: asyncio.run(_send(settings, asked, hotel, timeout_s)))
        if as_json:
            typer.echo(json.dumps(where))
            return
        out.print(f"Asked the owner of {hotel} (partition {where['partition']} of "
                  f"{where['topic']}, offset {where['offset']}) to send the {asked.period} "
                  f"report {_span(asked)} now, after every fact already written: it sends a "
                  "new version if the figures changed since the version last sent, nothing "
                  "if they did not.")
        return
    base = (url or f"http://{settings.web_host}:{settings.web_port}").rstrip("/")
    body = guard(lambda: _get(settings, base, hotel, asked, timeout_s))
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    guard(lambda: _print(body, asked, hotel))


def _period(period: str, day: str, hotel: str) -> ReportPeriod:
    if period not in {kind.value for kind in Period}:
        raise ReportCommandError(f"period must be daily, weekly or monthly, not {period!r}")
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise ReportCommandError(f"--date must be a date as YYYY-MM-DD, not {day!r}") from None
    if not hotel.strip():
        raise ReportCommandError("--hotel must name a hotel")
    return period_of(period, when)


def _span(period: ReportPeriod) -> str:
    if period.start == period.end:
        return f"of {period.start.isoformat()}"
    return f"of {period.start.isoformat()} to {period.end.isoformat()}"


# -- the figures, from a worker ------------------------------------------------------------


def _get(settings: HubSettings, base: str, hotel: str, period: ReportPeriod,
         timeout_s: float) -> dict[str, Any]:
    path = f"/reports/{quote(hotel, safe='')}/{period.period}/{period.start.isoformat()}"
    headers = authorization(settings)  # read from the operator's secret file; {} unsecured
    try:
        answer = httpx.get(base + path, headers=headers, timeout=timeout_s)
    except httpx.InvalidURL as exc:
        raise ReportCommandError(f"--url {base!r} is not a URL: {exc}") from None
    except httpx.TimeoutException:
        raise ReportCommandError(f"the worker at {base} did not answer within {timeout_s:g} s"
                                 ) from None
    except httpx.HTTPError as exc:
        raise ReportCommandError(
            f"cannot reach a worker at {base} ({exc or type(exc).__name__}): is `hotelhub "
            "worker` running? (--url, or HOTELHUB_WEB_HOST / HOTELHUB_WEB_PORT)") from None
    try:
        body = answer.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    detail = detail or answer.text.strip()[:200] or answer.reason_phrase
    if answer.status_code == 200 and isinstance(body, dict) and "figures" in body:
        return body
    if answer.status_code == 404:
        if isinstance(body, dict) and body.get("error") == "not_found" and \
                str(detail).startswith("no page"):
            raise ReportCommandError(f"the worker at {base} serves no reports ({detail}): "
                                     "is it a hub worker of this version?")
        raise ReportCommandError(f"unknown hotel {hotel}: {detail}")
    if answer.status_code == 400:
        raise ReportCommandError(f"the worker refused the request: {detail}")
    if answer.status_code in (401, 403):
        raise ReportCommandError(f"the worker refused identity {settings.identity}: {detail}")
    if answer.status_code == 503:
        raise ReportCommandError(f"the worker at {base} is not serving yet ({detail}); "
                                 "try again shortly")
    raise ReportCommandError(f"the worker at {base} answered {answer.status_code}: {detail}")


def _money(value: Any, currency: str) -> str:
    return f"{to_currency(Decimal(str(value)), currency):,}"


def _shown(value: Any, how: str, currency: str) -> str:
    if value is None:
        return "-"
    try:
        if how == "money":
            return _money(value, currency)
        if how == "rate":
            return f"{Decimal(str(value)) * 100:.2f} %"
        if how == "count":
            return f"{int(value):,}"
    except (InvalidOperation, ValueError, TypeError):
        pass
    return str(value)


def hotel_table(title: str, figures: dict[str, Any]) -> Table:
    """A report's hotel figures, one a row, amounts in its currency's minor unit."""
    currency = str(figures.get("currency") or "")
    table = Table(title=title, show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, label, how in HOTEL_ROWS:
        if name in figures:
            table.add_row(label, _shown(figures[name], how, currency))
    return table


def _print(body: dict[str, Any], period: ReportPeriod, hotel: str) -> None:
    if not out.is_terminal and out.width < 132:
        out.width = 132  # piped or captured: no narrow default to squeeze the columns into
    figures = body["figures"]
    currency = str(figures.get("currency") or "")
    if not currency:
        raise ReportCommandError("the worker's answer holds no currency")
    sent = body.get("sent")
    version = (f"version {sent['version']} sent at {sent['sent_at']}" if isinstance(sent, dict)
               else "not sent yet")
    out.print(f"[bold]{hotel}[/bold] {period.period} report {_span(period)} "
              f"({body.get('timezone')}), amounts in {currency}; due at {body.get('due_at')}, "
              f"{version}")
    out.print(hotel_table(hotel, figures))
    types = figures.get("room_types") or {}
    by_type = Table(title=f"By room type (OOO: out-of-order room-nights; {currency})",
                    show_header=True)
    by_type.add_column("room type", no_wrap=True)
    for _, heading, _ in ROOM_TYPE_COLUMNS:
        by_type.add_column(heading, justify="right", no_wrap=True)
    for room_type, found in sorted(types.items()):
        by_type.add_row(room_type, *(_shown(found.get(name), how, currency)
                                     for name, _, how in ROOM_TYPE_COLUMNS))
    if types:
        by_type.add_row("[bold]hotel[/bold]", *(_shown(figures.get(name), how, currency)
                                                 for name, _, how in ROOM_TYPE_COLUMNS))
        out.print(by_type)
    else:
        out.print("no room types known yet")


# -- send now --------------------------------------------------------------------------------


async def _send(settings: HubSettings, period: ReportPeriod, hotel: str, timeout_s: float
                ) -> dict[str, Any]:
    """Write one SendRequest to the hotel's partition of the facts topic; where it went."""
    topic = report_facts_topic(settings)
    # By the topic's own count, which the workers created it with: the hotel's facts are
    # there, and the request must queue behind them.
    partition = hotel_partition(hotel, await _partitions_of(settings, topic))
    request = SendRequest(hotel_id=hotel, period=period.period, start=period.start)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        **settings.kafka_auth(),
        client_id="hotelhub-report",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(producer.start(), timeout=timeout_s)
    except (KafkaConnectionError, TimeoutError) as exc:
        await producer.stop()
        raise BrokerUnavailable(f"cannot reach Kafka at {settings.bootstrap_servers}: "
                                f"{exc!r}") from None
    try:
        meta = await asyncio.wait_for(producer.send_and_wait(
            topic, key=hotel.encode(), value=request.model_dump_json().encode(),
            partition=partition), timeout=timeout_s)
    except (KafkaError, TimeoutError) as exc:
        raise BrokerUnavailable(f"the send request to {topic}[{partition}] failed: {exc!r}"
                                ) from None
    finally:
        await producer.stop()
    return {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset,
            "request": json.loads(request.model_dump_json())}


async def _partitions_of(settings: HubSettings, topic: str) -> int:
    admin = await admin_client(settings)
    try:
        if topic not in set(await admin.list_topics()):
            raise ConfigurationError(
                f"{topic} does not exist on {settings.bootstrap_servers}: has a worker of "
                f"app id {settings.app_id} (HOTELHUB_APP_ID) run there?")
        described = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot describe {topic} on {settings.bootstrap_servers}: "
                                f"{exc!r}") from None
    finally:
        await admin.close()
    found = [meta for meta in described if meta["topic"] == topic and not meta["error_code"]]
    if not found or not found[0]["partitions"]:
        raise BrokerUnavailable(f"{topic} has no partitions the broker would name")
    return len(found[0]["partitions"])
