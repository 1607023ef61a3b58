"""What the query API reads from a request and how it answers a refusal, without Faust.

Parameters are parsed here (a bad one is a `BadQuery` naming it, never an exception that
would make a 500), and a hotel's rooms are filtered and put in room-number order, so the
views in `streams.worker.views` stay thin and all of this is tested without a worker.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any, ClassVar, Protocol

from streams.core.exceptions import HubError
from streams.core.models import RoomStatus
from streams.core.state import ReservationState, RoomState

MAX_NIGHTS = 366
"""Longest availability range one query may ask for, so one request stays cheap."""


class Query(Protocol):
    """What the parsers read of a request: its query string."""

    @property
    def url(self) -> Any: ...


class QueryError(HubError):
    """A query this worker cannot answer with data; `status` and `code` make the HTTP answer."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "error"
    retry: ClassVar[bool] = False


class BadQuery(QueryError):
    status, code = 400, "bad_request"


class EntityNotFound(QueryError):
    status, code = 404, "not_found"


class NotServing(QueryError):
    """Tables are restoring or partitions moving: ask again shortly, never read stale data."""

    status, code, retry = 503, "recovering", True


class OwnerUnavailable(QueryError):
    """The worker owning the key did not answer; the group will reassign its partitions."""

    status, code, retry = 503, "owner_unavailable", True


# --- parameters ----------------------------------------------------------------------------


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
"""ASCII digits only: a date is never written in another script's digits."""


def day_param(request: Query, name: str) -> date:
    raw = request.url.query.get(name)
    if not raw:
        raise BadQuery(f"query parameter {name!r} is required (YYYY-MM-DD)")
    try:
        if _ISO_DAY.fullmatch(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise BadQuery(f"query parameter {name!r} is not a date YYYY-MM-DD: {raw!r}")


def stay_days(request: Query) -> tuple[date | None, date | None]:
    """`arriving` and `departing` of a hotel's reservation listing; one at least, so a listing
    stays one day's worth of stays, never the hotel's whole history."""
    found = tuple(day_param(request, name) if request.url.query.get(name) else None
                  for name in ("arriving", "departing"))
    if found == (None, None):
        raise BadQuery("query parameter 'arriving' or 'departing' is required (YYYY-MM-DD)")
    return found[0], found[1]


def nights_param(request: Query) -> list[date]:
    first, last = day_param(request, "from"), day_param(request, "to")
    if last < first:
        raise BadQuery(f"query parameter 'to' ({last}) is before 'from' ({first})")
    count = (last - first).days + 1
    if count > MAX_NIGHTS:
        raise BadQuery(f"query parameters 'from'..'to' span {count} nights; "
                       f"at most {MAX_NIGHTS} per query")
    return [first + timedelta(days=offset) for offset in range(count)]


_STATUSES = {status.value for status in RoomStatus}


def room_filters(request: Query) -> tuple[str | None, str | None]:
    status = request.url.query.get("status") or None
    if status is not None and status not in _STATUSES:
        raise BadQuery(f"query parameter 'status' must be one of {sorted(_STATUSES)}, "
                       f"not {status!r}")
    return status, request.url.query.get("type") or None


_DIGIT_RUN = re.compile(r"(\d+)")  # decimal digits of any script (Unicode Nd)
_KeyPart = tuple[int, int, str, str] | tuple[int, str, str]


def natural_key(text: str) -> tuple[_KeyPart, ...]:
    """Sort key in which digit runs compare as numbers (99 before 101, 2A before 10).

    Total and never raising, whatever the text holds: runs of decimal digits of any script
    are read digit by digit through `unicodedata.decimal` and compared by length then
    digits, never through `int()` (which refuses '²' and over 4300 digits); anything else,
    '²' included, is text compared case-insensitively, then exactly.
    """
    parts: list[_KeyPart] = []
    for index, part in enumerate(_DIGIT_RUN.split(text)):
        if not part:
            continue
        if index % 2:  # a captured run of decimal digits
            digits = "".join(str(unicodedata.decimal(char, 0)) for char in part).lstrip("0")
            parts.append((0, len(digits), digits, part))
        else:
            parts.append((1, part.casefold(), part))
    return tuple(parts)


def room_number_order(room: Mapping[str, Any]) -> tuple[Any, ...]:
    """Rooms by number in natural order (see `natural_key`), then by id."""
    return natural_key(str(room.get("room_number", ""))), str(room.get("room_id", ""))


def hotel_rooms(items: Iterable[tuple[bytes, bytes]], hotel_id: str, status: str | None,
                room_type: str | None) -> list[dict[str, Any]]:
    """The rooms of `hotel_id` among table items (key, state JSON), filtered, in order."""
    prefix = f"{hotel_id}:".encode()
    rooms = []
    for key, raw in items:
        if not key.startswith(prefix):
            continue
        room = RoomState.model_validate_json(raw)
        if (status is None or room.status == status) and (
                room_type is None or room.room_type == room_type):
            rooms.append(room.to_json())
    return sorted(rooms, key=room_number_order)


def hotel_reservations(items: Iterable[tuple[bytes, bytes]], hotel_id: str,
                       arriving: date | None, departing: date | None) -> list[dict[str, Any]]:
    """The stays of `hotel_id` among table items checking in on `arriving` and out on
    `departing` (each when given), by room number then id. A stay known only from its
    movements (no booking yet) has no dates, so it is never listed."""
    prefix = f"{hotel_id}:".encode()
    found = []
    for key, raw in items:
        if not key.startswith(prefix):
            continue
        stay = ReservationState.model_validate_json(raw)
        if (arriving is None or stay.checkin_date == arriving) and (
                departing is None or stay.checkout_date == departing):
            found.append(stay.model_dump(mode="json", exclude={"pending_movements"}))
    return sorted(found, key=lambda stay: (natural_key(str(stay.get("room_number") or "")),
                                           str(stay["reservation_id"])))
