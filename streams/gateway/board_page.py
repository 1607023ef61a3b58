"""The live board's HTML, rendered on the server: every value escaped, no template engine.

`page` is the whole document; `panels` the part the script fetches again every few
seconds (everything but the live feed, which the script fills from `/ws`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from html import escape
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from streams.core.query_params import natural_key
from streams.gateway.board_data import Board, Part, floor_of

REFRESH_S = 5
STATUS_LABELS = {
    "vacant_clean": ("VC", "vacant clean"), "inspected": ("IN", "inspected"),
    "vacant_dirty": ("VD", "vacant dirty"), "occupied_clean": ("OC", "occupied clean"),
    "occupied_dirty": ("OD", "occupied dirty"), "out_of_order": ("OOO", "out of order"),
    "out_of_service": ("OOS", "out of service"),
}


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def board_path(hotel_id: str) -> str:
    return f"/board/{quote(hotel_id, safe='')}"


def _local_time(moment: str | None, zone: ZoneInfo) -> str:
    if not moment:
        return ""
    try:
        return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(zone
                                                                                ).strftime("%H:%M")
    except ValueError:
        return moment


def _unavailable(part: Part) -> str:
    return f'<p class="notice" role="status">{_e(part.problem)}</p>'


def _kpi(key: str, label: str, value: Any, detail: str = "") -> str:
    shown = "&ndash;" if value is None else _e(value)
    extra = f'<span class="kpi-detail">{_e(detail)}</span>' if detail else ""
    return (f'<div class="kpi" data-kpi="{_e(key)}"><span class="kpi-value">{shown}</span>'
            f'<span class="kpi-label">{_e(label)}</span>{extra}</div>')


def _kpis(board: Board) -> str:
    k = board.kpis
    occupancy = None if k.get("occupancy_pct") is None else f"{k['occupancy_pct']:g}%"
    cards = [
        _kpi("occupancy", "occupancy", occupancy,
             f"{k['occupied']} of {k['sellable']} sellable" if "occupied" in k else ""),
        _kpi("arrivals", "arrived / expected",
             f"{k['arrived']} / {k['arrivals_expected']}" if "arrived" in k else None,
             f"{k['no_shows']} no-show" if k.get("no_shows") else ""),
        _kpi("departures", "departed / expected",
             f"{k['departed']} / {k['departures_expected']}" if "departed" in k else None),
        _kpi("out_of_order", "out of order", k.get("out_of_order"),
             f"{k['out_of_service']} out of service" if k.get("out_of_service") else ""),
        _kpi("dirty", "rooms to clean", k.get("dirty")),
        _kpi("ready", "vacant & ready", k.get("ready")),
        _kpi("refusals", "refusals today", k.get("refusals")),
        _kpi("dead_letters", "dead letters waiting", k.get("dead_letters")),
    ]
    return f'<section class="kpis" aria-label="today\'s figures">{"".join(cards)}</section>'


def _tile(room: dict[str, Any]) -> str:
    status = str(room.get("status", ""))
    short, long = STATUS_LABELS.get(status, (status[:3].upper(), status))
    title = f"{room.get('room_number')} {room.get('room_type')}: {long}"
    if room.get("maintenance_notes"):
        title += f" ({room['maintenance_notes']})"
    return (f'<li class="tile st-{_e(status)}" data-room="{_e(room.get("room_number"))}" '
            f'data-status="{_e(status)}" title="{_e(title)}">'
            f'<span class="num">{_e(room.get("room_number"))}</span>'
            f'<span class="type">{_e(room.get("room_type"))}</span>'
            f'<span class="st">{_e(short)}</span></li>')


def _rooms(part: Part) -> str:
    head = '<h2>Rooms</h2>'
    if part.problem:
        return f'<section class="panel rooms" id="rooms">{head}{_unavailable(part)}</section>'
    floors: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for room in part.items:
        floors[floor_of(str(room.get("room_number", "")))].append(room)
    rows = "".join(
        f'<div class="floor" data-floor="{_e(floor)}"><span class="floor-name">'
        f'{"Floor " + _e(floor) if floor != "other" else "Other"}</span>'
        f'<ul class="tiles">{"".join(_tile(room) for room in rooms)}</ul></div>'
        for floor, rooms in sorted(floors.items(), key=lambda item: natural_key(
            "~" if item[0] == "other" else item[0])))
    present = {str(room.get("status")) for room in part.items}
    legend = "".join(f'<li><span class="swatch st-{_e(status)}"></span>{_e(long)}</li>'
                     for status, (_, long) in STATUS_LABELS.items() if status in present)
    body = rows or '<p class="empty">No rooms known for this hotel yet.</p>'
    return (f'<section class="panel rooms" id="rooms">{head}<ul class="legend">{legend}</ul>'
            f'{body}</section>')


def _badge(status: Any) -> str:
    text = str(status or "unknown")
    return f'<span class="badge b-{_e(text)}">{_e(text.replace("_", " "))}</span>'


def _nights(stay: dict[str, Any]) -> str:
    try:
        return str((date.fromisoformat(stay["checkout_date"])
                    - date.fromisoformat(stay["checkin_date"])).days)
    except (KeyError, TypeError, ValueError):
        return ""


def _stays(title: str, key: str, part: Part, zone: ZoneInfo) -> str:
    head = f"<h2>{_e(title)}</h2>"
    if part.problem:
        return f'<section class="panel stays" id="{key}">{head}{_unavailable(part)}</section>'
    if not part.items:
        return (f'<section class="panel stays" id="{key}">{head}'
                f'<p class="empty">None today.</p></section>')
    moment = "actual_checkin_time" if key == "arrivals" else "actual_checkout_time"
    rows = "".join(
        f'<tr data-reservation="{_e(stay.get("reservation_id"))}" '
        f'data-status="{_e(stay.get("status"))}">'
        f'<td class="room">{_e(stay.get("room_number"))}</td>'
        f'<td>{_e(stay.get("reservation_id"))}</td><td>{_e(stay.get("customer_id"))}</td>'
        f'<td>{_e(stay.get("room_type"))}</td><td class="n">{_e(_nights(stay))}</td>'
        f'<td>{_badge(stay.get("status"))}</td>'
        f'<td class="n">{_e(_local_time(stay.get(moment), zone))}</td></tr>'
        for stay in part.items)
    when = "in at" if key == "arrivals" else "out at"
    return (f'<section class="panel stays" id="{key}">{head}<table><thead><tr><th>Room</th>'
            f'<th>Reservation</th><th>Guest</th><th>Type</th><th class="n">Nights</th>'
            f'<th>Status</th><th class="n">{when}</th></tr></thead><tbody>{rows}</tbody>'
            f'</table></section>')


def _refusals(part: Part, zone: ZoneInfo) -> str:
    head = "<h2>Refusals today</h2>"
    if part.problem:
        return f'<section class="panel issues" id="refusals">{head}{_unavailable(part)}</section>'
    if not part.items:
        return (f'<section class="panel issues" id="refusals">{head}'
                f'<p class="empty">No refusals today.</p></section>')
    items = "".join(
        f'<li><span class="when">{_e(_local_time(refusal.get("refused_at"), zone))}</span>'
        f'<span class="what">{_e(refusal.get("event_type", "").removeprefix("hotel."))} '
        f'<b>{_e(refusal.get("entity_id"))}</b></span>'
        f'<span class="why">{_e(refusal.get("reason_code"))}: {_e(refusal.get("reason"))}</span>'
        f'<span class="who">from {_e(refusal.get("origin_system"))}</span></li>'
        for refusal in part.items[:20])
    more = f'<p class="more">and {len(part.items) - 20} more</p>' if len(part.items) > 20 else ""
    return (f'<section class="panel issues" id="refusals">{head}<ul class="issue-list">{items}'
            f'</ul>{more}</section>')


def _dead_letters(board: Board, zone: ZoneInfo) -> str:
    head = "<h2>Dead letters waiting</h2>"
    parts = (("Hub", board.hub_dead_letters, "source_topic"),
             ("Webhooks", board.webhook_dead_letters, "system"))
    blocks = []
    for name, part, origin in parts:
        if part.problem:
            blocks.append(f'<h3>{name}</h3><p class="notice quiet">{_e(part.problem)}</p>')
            continue
        items = "".join(
            f'<li><span class="when">{_e(_local_time(letter.get("time"), zone))}</span>'
            f'<span class="what">{_e(letter.get(origin))}</span>'
            f'<span class="why">{_e(letter.get("reason"))}</span></li>'
            for letter in part.items[:5])
        count = len(part.items)
        blocks.append(f'<h3>{name} <span class="count">{count}</span></h3>'
                      + (f'<ul class="issue-list">{items}</ul>' if items else
                         '<p class="empty">None.</p>'))
    return f'<section class="panel issues" id="dead-letters">{head}{"".join(blocks)}</section>'


def panels(board: Board) -> str:
    """Everything the script refreshes: figures, rooms, stays, refusals, dead letters."""
    zone = ZoneInfo(board.timezone)
    updated = _local_time(board.generated_at, zone)
    return (f'<div id="panels" data-updated="{_e(board.generated_at)}">{_kpis(board)}'
            f'<div class="columns"><div class="main">{_rooms(board.rooms)}'
            f'<div class="pair">{_stays("Arrivals", "arrivals", board.arrivals, zone)}'
            f'{_stays("Departures", "departures", board.departures, zone)}</div></div>'
            f'<div class="side">{_refusals(board.refusals, zone)}{_dead_letters(board, zone)}'
            f'</div></div><p class="stamp">State as of {_e(updated)} ({_e(board.timezone)})'
            f'</p></div>')


def page(board: Board, *, viewer: str, token: str) -> str:
    base = board_path(board.hotel_id)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(board.hotel_id)} &middot; hotelhub board</title>
<link rel="stylesheet" href="/board/board.css">
<script src="/board/board.js" defer></script>
</head>
<body data-hotel="{_e(board.hotel_id)}" data-panels-url="{_e(base)}/panels"
 data-token-url="{_e(base)}/token" data-ws-token="{_e(token)}" data-refresh-s="{REFRESH_S}"
 data-timezone="{_e(board.timezone)}">
<header class="top">
  <div class="title"><span class="brand">hotelhub</span>
    <h1>{_e(board.hotel_id)}</h1>
    <span class="day">{_e(board.day.strftime("%A %d %B %Y"))}</span></div>
  <div class="meta"><span id="live" class="live off" role="status">connecting&hellip;</span>
    <span class="viewer">signed in as {_e(viewer)}</span></div>
</header>
<main class="layout">
{panels(board)}
<aside class="panel feed" aria-label="live events">
  <h2>Live events</h2>
  <ol id="feed" class="feed-list"></ol>
  <p id="feed-empty" class="empty">Waiting for events&hellip;</p>
</aside>
</main>
</body>
</html>
"""
