"""`hotelhub events`: what the Event Storage holds, for a support engineer.

    hotelhub events --entity reservation:R-1042            # one booking's own records
    hotelhub events --chain R-1042                          # and all that followed from it
    hotelhub events --kind refusal --since 2026-11-24       # today's refusals
    hotelhub events --hotel HTL-TYO-01 --kind room.status_changed --until 2026-11-24T12:00

A time without an offset is the hotel's (HOTELHUB_TIMEZONE, or the hotel's own zone with
--hotel). Pages of --limit records; the last line says how to get the next (--cursor), or
--all follows them. --json prints one JSON object per line, as the gateway's GET /events.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape

from streams.cli.events import guard
from streams.settings import HubSettings, get_settings
from streams.storage.database import connect
from streams.storage.queries import EventFilter, Page, chain, find
from streams.wire.deadletters import parse_instant

out = Console(soft_wrap=True, highlight=False)


def events(
    entity: Annotated[str | None, typer.Option(
        help="TYPE:ID, e.g. reservation:R-1042 or room:HTL-TYO-01-R201")] = None,
    chain_of: Annotated[str | None, typer.Option(
        "--chain", help="A correlation id, reservation id or event id: everything that "
        "followed from it (booking, check-in, derived room event, refusal, deliveries)")] = None,
    kind: Annotated[str | None, typer.Option(
        help="reservation, room.status_changed, refusal, delivery, deadletter ...")] = None,
    hotel: Annotated[str | None, typer.Option(help="A hotel id")] = None,
    record_type: Annotated[str | None, typer.Option(
        help="event, refusal, delivery, dead_letter, webhook_dead_letter, undecodable")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601), inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Records per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Where the previous page ended")] = None,
    every: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Records of the Event Storage by entity, chain, kind, hotel and time, oldest first."""
    settings = get_settings()
    if chain_of is not None and (entity or kind or record_type or since or until or cursor):
        raise typer.BadParameter("--chain takes no other filter but --hotel",
                                 param_hint="--chain")

    async def run() -> None:
        async with await connect(settings.database_dsn()) as conn:
            if chain_of is not None:
                found = await chain(conn, chain_of)
                if hotel is not None:
                    found = [row for row in found if row["hotel_id"] == hotel]
                show_records(found, as_json)
                if not found and not as_json:
                    out.print(f"nothing stored for {chain_of!r}")
                return
            where = _filter(settings, entity=entity, kind=kind, hotel=hotel,
                            record_type=record_type, since=since, until=until)
            page = Page([], cursor)
            first = True
            while first or (every and page.next):
                page = await find(conn, where, limit=limit, after=page.next)
                show_records(page.records, as_json)
                first = False
            if page.next and not as_json:
                out.print(f"more: --cursor {page.next}")

    guard(lambda: asyncio.run(run()))


def _filter(settings: HubSettings, *, entity: str | None, kind: str | None,
            hotel: str | None, record_type: str | None, since: str | None,
            until: str | None) -> EventFilter:
    entity_type = entity_id = None
    if entity is not None:
        entity_type, _, entity_id = entity.partition(":")
        if not entity_type or not entity_id:
            raise typer.BadParameter(f"{entity!r} is not TYPE:ID (e.g. reservation:R-1042)",
                                     param_hint="--entity")
    zone = ZoneInfo(settings.rules().timezone_of(hotel) if hotel else settings.timezone)

    def instant(text: str | None, hint: str) -> datetime | None:
        try:
            return None if text is None else parse_instant(text, zone)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=hint) from exc

    return EventFilter(hotel_id=hotel, entity_type=entity_type, entity_id=entity_id,
                       kind=kind, record_type=record_type, since=instant(since, "--since"),
                       until=instant(until, "--until"))


def show_records(rows: list[dict[str, Any]], as_json: bool = False, *,
                 title: str | None = None) -> None:
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        return
    if title:
        out.print(f"[bold]{escape(title)}[/bold]")
    for row in rows:
        moment = datetime.fromisoformat(row["occurred_at"]).astimezone(UTC)
        entity = f"{row['entity_type']}:{row['entity_id']}" if row["entity_id"] else ""
        route = f"{row['source_system'] or '?'} > {','.join(row['targets']) or '-'}"
        out.print(f"{moment:%Y-%m-%d %H:%M:%S}Z  [cyan]"
                  f"{escape(row['event_type'].removeprefix('hotel.'))}[/cyan]  "
                  f"{escape(entity)}  {escape(route)}  {escape(_detail(row))}  "
                  f"[dim]{row['record_id'][:8]}[/dim]")


def _detail(row: dict[str, Any]) -> str:
    """The one field that says most about a record of this type."""
    payload = row["payload"] or {}
    data = payload.get("data") or {}
    if row["record_type"] == "refusal":
        return str(payload.get("reason", ""))[:80]
    if row["record_type"] == "delivery":
        return f"{payload.get('channel')} to {payload.get('target_system')}"
    if row["record_type"] in ("dead_letter", "webhook_dead_letter", "undecodable"):
        return str(payload.get("reason") or payload.get("error") or "")[:80]
    for field in ("status", "payment_status", "rank_id", "report_type"):
        if field in data:
            return f"{field}={data[field]}"
    return ""
