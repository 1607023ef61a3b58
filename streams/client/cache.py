"""The local cache the front desk reads while the hub is out of reach.

It holds the latest known state of each room, reservation and customer of the hub's events,
the PMS's own changes not yet confirmed (`pending`), and the hub's refusals of them
(`conflicts`). Events may arrive late, twice, or out of order (a replay after a reconnect,
an offline change synced after newer ones), so `apply` is idempotent by event id and lets
the change that happened last win; any delivery order of the same events ends in the same
rows.

The file is written with `synchronous=NORMAL`: a power cut may lose the last commits, which
is acceptable because everything here is rebuilt from the hub (the cursor is lost with
them, so the lost events are read again).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from streams.client.sqlite import SchemaTooNew, open_store, transaction

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE entities (
    kind TEXT NOT NULL,
    hotel_id TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    data TEXT NOT NULL,
    version INTEGER,
    occurred_at TEXT NOT NULL,
    event_id TEXT NOT NULL,
    pending INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    stamps TEXT NOT NULL,
    PRIMARY KEY (kind, hotel_id, entity_id)
);
CREATE INDEX entities_by_event ON entities (event_id);
CREATE TABLE seen (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE conflicts (
    refusal_id TEXT PRIMARY KEY,
    refused_event_id TEXT NOT NULL,
    hotel_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    current_state TEXT,
    created_offline INTEGER NOT NULL,
    refused_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    resolved_at TEXT,
    resolution TEXT
);
CREATE INDEX conflicts_in_order ON conflicts (resolved_at, refused_at);
CREATE TABLE cursor (id INTEGER PRIMARY KEY CHECK (id = 1), value TEXT NOT NULL);
"""

RESERVATION = "reservation"
CUSTOMER = "customer"
ROOM = "room"
CHECKIN_CHECKOUT = "checkin_checkout"
_ENTITY_FIELD = {
    RESERVATION: "reservation_id",
    CUSTOMER: "customer_id",
    ROOM: "room_id",
    CHECKIN_CHECKOUT: "reservation_id",
}
_MOVEMENT_STATUS = {"checked_in": "checked_in", "checked_out": "checked_out", "no_show": "no_show"}
_MOVEMENT_FIELDS = ("room_number", "actual_checkin_time", "actual_checkout_time")
_ROW = "kind, hotel_id, entity_id, data, version, occurred_at, event_id, pending, refused"
_CONFLICT = (
    "refusal_id, refused_event_id, hotel_id, event_type, entity_id, reason_code, reason,"
    " current_state, created_offline, refused_at, received_at, resolved_at, resolution"
)

_Key = tuple[datetime, int]
"""The order of changes to one entity: when it happened, then `data.version` (none = -1)."""


class CacheSchemaError(SchemaTooNew):
    """The cache was written by a newer client; delete the file to rebuild it from the hub."""


@dataclass(frozen=True)
class Cached:
    kind: str
    hotel_id: str
    entity_id: str
    data: dict[str, Any]
    version: int | None
    occurred_at: datetime
    event_id: str
    """The event the row's latest change came from."""
    pending: bool
    """Changed here and not yet confirmed by the hub."""
    refused: bool
    """The hub refused the row's latest change: see `LocalCache.conflicts`."""


@dataclass(frozen=True)
class Conflict:
    """A refusal of the hub, kept until someone at the hotel has dealt with it."""

    refusal_id: str
    refused_event_id: str
    hotel_id: str
    event_type: str
    entity_id: str
    reason_code: str
    reason: str
    current_state: str | None
    """The hub's state of the entity when it refused, as JSON, when it sent one."""
    created_offline: bool
    refused_at: datetime
    received_at: datetime
    resolved_at: datetime | None
    resolution: str | None


def _field(source: Mapping[str, Any], name: str, *, prefix: str = "") -> Any:
    value = source.get(name)
    if value is None or value == "":
        raise ValueError(f"event is missing {prefix}{name}")
    return value


def _aware(text: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"{name} is not an ISO date and time: {text!r}") from None
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must carry a UTC offset: {text!r}")
    return moment


def _utc_text(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _key(occurred_at: str, version: int | None) -> _Key:
    return datetime.fromisoformat(occurred_at), -1 if version is None else version


@dataclass(frozen=True)
class _Change:
    """An event, checked, in the terms the cache stores."""

    kind: str
    hotel_id: str
    entity_id: str
    event_id: str
    action: str
    occurred_at: str
    key: _Key
    version: int | None
    data: dict[str, Any]


def _change(event: Mapping[str, Any], kind: str) -> _Change:
    event_id = str(_field(event, "event_id"))
    hotel_id = str(_field(event, "hotel_id"))
    occurred_text = str(_field(event, "occurred_at"))
    occurred = _aware(occurred_text, "occurred_at")
    data = _field(event, "data")
    if not isinstance(data, Mapping):
        raise ValueError(f"event {event_id}: data must be an object, not {type(data).__name__}")
    entity_id = str(_field(data, _ENTITY_FIELD[kind], prefix="data."))
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValueError(f"event {event_id}: data.version must be an integer, not {version!r}")
    action = str(event.get("action") or "")
    if kind == CHECKIN_CHECKOUT and action not in _MOVEMENT_STATUS:
        raise ValueError(f"event {event_id}: action must be one of {sorted(_MOVEMENT_STATUS)}")
    if kind == CUSTOMER:
        updated = data.get("updated_fields") or []
        if not isinstance(updated, list) or not all(isinstance(f, str) for f in updated):
            raise ValueError(f"event {event_id}: data.updated_fields must be a list of names")
    return _Change(
        kind=kind,
        hotel_id=hotel_id,
        entity_id=entity_id,
        event_id=event_id,
        action=action,
        occurred_at=occurred_text,
        key=(occurred, -1 if version is None else version),
        version=version,
        data=dict(data),
    )


def _room_order(cached: Cached) -> tuple[Any, ...]:
    """Room numbers in the order of a corridor: "2" before "10", "B2" before "B10"."""
    parts = re.split(r"(\d+)", str(cached.data.get("room_number", "")))
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def _cached(row: tuple[Any, ...]) -> Cached:
    kind, hotel_id, entity_id, data, version, occurred_at, event_id, pending, refused = row
    return Cached(
        kind=kind,
        hotel_id=hotel_id,
        entity_id=entity_id,
        data=json.loads(data),
        version=version,
        occurred_at=datetime.fromisoformat(occurred_at),
        event_id=event_id,
        pending=bool(pending),
        refused=bool(refused),
    )


def _conflict(row: tuple[Any, ...]) -> Conflict:
    created_offline, refused_at, received_at, resolved_at, resolution = row[8:]
    return Conflict(
        refusal_id=row[0],
        refused_event_id=row[1],
        hotel_id=row[2],
        event_type=row[3],
        entity_id=row[4],
        reason_code=row[5],
        reason=row[6],
        current_state=row[7],
        created_offline=bool(created_offline),
        refused_at=datetime.fromisoformat(refused_at),
        received_at=datetime.fromisoformat(received_at),
        resolved_at=None if resolved_at is None else datetime.fromisoformat(resolved_at),
        resolution=resolution,
    )


def _dumps(value: object) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


class LocalCache:
    """The cache in the SQLite file at `path` (created with its parent folders)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_store(path, synchronous="NORMAL", schema=_SCHEMA,
                              version=SCHEMA_VERSION, error=CacheSchemaError)
        self._closed = False

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- changes ---------------------------------------------------------------------

    def apply(self, event: Mapping[str, Any], *, pending: bool = False) -> bool:
        """Apply one of the hub's events (its JSON shape); True when a row changed.

        The change that happened last wins, by `occurred_at` compared as times, then by
        `data.version`: an event older than the row, or as old with no higher version, does
        not overwrite it, so a late or replayed event never undoes a newer change. Customer
        events merge field by field under the same rule: a field present and not None, or
        listed in `data.updated_fields` (then even None), replaces an older value of that
        field. A check-in, check-out or no-show changes its reservation's status, room
        number and actual times; one for a reservation the cache does not know is ignored
        (and not remembered, so a redelivery after the reservation is known applies).
        An event id already applied is a no-op; kinds the cache does not hold (analytics)
        return False. `pending` marks a change made here and not yet confirmed by the hub.

        Raises `ValueError` naming the field when the event lacks what it needs; nothing
        is stored then.
        """
        kind = str(_field(event, "type"))
        if kind not in _ENTITY_FIELD:
            return False
        change = _change(event, kind)
        with self._lock, self._transaction() as db:
            if db.execute("SELECT 1 FROM seen WHERE event_id = ?", (change.event_id,)).fetchall():
                return False
            stored_kind = RESERVATION if kind == CHECKIN_CHECKOUT else kind
            rows = db.execute(
                "SELECT data, version, occurred_at, event_id, stamps FROM entities"
                " WHERE kind = ? AND hotel_id = ? AND entity_id = ?",
                (stored_kind, change.hotel_id, change.entity_id),
            ).fetchall()
            row = rows[0] if rows else None
            if kind == CHECKIN_CHECKOUT and row is None:
                return False
            db.execute("INSERT INTO seen (event_id) VALUES (?)", (change.event_id,))
            if kind == CHECKIN_CHECKOUT:
                written = _moved(change, row)
            elif kind == CUSTOMER:
                written = _merged(change, row)
            else:
                written = _replaced(change, row)
            if written is None:
                return False
            data, version, occurred_at, event_id, stamps = written
            latest = event_id == change.event_id
            db.execute(
                "INSERT INTO entities (kind, hotel_id, entity_id, data, version, occurred_at,"
                " event_id, pending, refused, stamps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"
                " ON CONFLICT (kind, hotel_id, entity_id) DO UPDATE SET data = excluded.data,"
                " version = excluded.version, occurred_at = excluded.occurred_at,"
                " event_id = excluded.event_id, stamps = excluded.stamps,"
                " pending = CASE WHEN ? THEN excluded.pending ELSE pending END,"
                " refused = CASE WHEN ? THEN 0 ELSE refused END",
                (
                    stored_kind,
                    change.hotel_id,
                    change.entity_id,
                    _dumps(data),
                    version,
                    occurred_at,
                    event_id,
                    int(pending),
                    _dumps(stamps),
                    latest,
                    latest,
                ),
            )
            return True

    def confirm(self, *event_ids: str) -> None:
        """The hub holds these events: the rows they changed are no longer pending (one
        transaction for a whole sync round)."""
        with self._lock, self._transaction() as db:
            db.executemany("UPDATE entities SET pending = 0 WHERE event_id = ?",
                           [(event_id,) for event_id in event_ids])

    # --- readers ---------------------------------------------------------------------

    def _one(self, kind: str, hotel_id: str, entity_id: str) -> Cached | None:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ROW} FROM entities WHERE kind = ? AND hotel_id = ? AND entity_id = ?",
                (kind, hotel_id, entity_id),
            ).fetchall()
        return _cached(rows[0]) if rows else None

    def room(self, hotel_id: str, room_id: str) -> Cached | None:
        return self._one(ROOM, hotel_id, room_id)

    def rooms(self, hotel_id: str, *, status: str | None = None) -> list[Cached]:
        """The hotel's rooms (of one `status` when given), by room number."""
        query = f"SELECT {_ROW} FROM entities WHERE kind = ? AND hotel_id = ?"
        params: tuple[Any, ...] = (ROOM, hotel_id)
        if status is not None:
            query += " AND json_extract(data, '$.status') = ?"
            params += (status,)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return sorted((_cached(row) for row in rows), key=_room_order)

    def reservation(self, hotel_id: str, reservation_id: str) -> Cached | None:
        return self._one(RESERVATION, hotel_id, reservation_id)

    def reservations(
        self, hotel_id: str, *, arriving: date | None = None, departing: date | None = None
    ) -> list[Cached]:
        """The hotel's reservations, those arriving or departing on a day when given, by
        arrival date then reservation id."""
        query = f"SELECT {_ROW} FROM entities WHERE kind = ? AND hotel_id = ?"
        params: tuple[Any, ...] = (RESERVATION, hotel_id)
        if arriving is not None:
            query += " AND substr(json_extract(data, '$.checkin_date'), 1, 10) = ?"
            params += (arriving.isoformat(),)
        if departing is not None:
            query += " AND substr(json_extract(data, '$.checkout_date'), 1, 10) = ?"
            params += (departing.isoformat(),)
        query += " ORDER BY json_extract(data, '$.checkin_date'), entity_id"
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [_cached(row) for row in rows]

    def customer(self, hotel_id: str, customer_id: str) -> Cached | None:
        return self._one(CUSTOMER, hotel_id, customer_id)

    # --- conflicts -------------------------------------------------------------------

    def record_refusal(self, refusal: Mapping[str, Any]) -> Conflict:
        """Keep a refusal of the hub (its JSON shape) until it is resolved; idempotent by
        `refusal_id`. When the refused event is the latest change of its row, the row is
        marked refused, and no longer pending: the hub has answered."""
        names = ("refusal_id", "refused_event_id", "hotel_id", "event_type", "entity_id")
        values = [str(_field(refusal, name)) for name in names]  # in the table's order
        reason_code = str(_field(refusal, "reason_code"))
        reason = str(refusal.get("reason") or "")
        refused_at = _aware(_field(refusal, "refused_at"), "refused_at")
        state = refusal.get("current_state")
        current_state = state if state is None or isinstance(state, str) else _dumps(state)
        with self._lock, self._transaction() as db:
            db.execute(
                f"INSERT INTO conflicts ({_CONFLICT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " NULL, NULL) ON CONFLICT (refusal_id) DO NOTHING",
                (
                    *values,
                    reason_code,
                    reason,
                    current_state,
                    int(bool(refusal.get("created_offline", False))),
                    _utc_text(refused_at),
                    _utc_text(datetime.now(UTC)),
                ),
            )
            db.execute(
                "UPDATE entities SET refused = 1, pending = 0 WHERE hotel_id = ? AND event_id = ?",
                (values[2], values[1]),
            )
            row = db.execute(
                f"SELECT {_CONFLICT} FROM conflicts WHERE refusal_id = ?", (values[0],)
            ).fetchall()[0]
        return _conflict(row)

    def conflicts(self, *, unresolved: bool = True) -> list[Conflict]:
        """Refusals, oldest first; only those not yet resolved unless `unresolved=False`."""
        where = "WHERE resolved_at IS NULL" if unresolved else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_CONFLICT} FROM conflicts {where}"
                " ORDER BY refused_at, received_at, refusal_id"
            ).fetchall()
        return [_conflict(row) for row in rows]

    def resolve(self, refusal_id: str, resolution: str) -> None:
        """Record how a conflict was settled; raises `KeyError` for an unknown refusal."""
        with self._lock, self._transaction() as db:
            cursor = db.execute(
                "UPDATE conflicts SET resolved_at = ?, resolution = ? WHERE refusal_id = ?",
                (_utc_text(datetime.now(UTC)), resolution, refusal_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"no conflict with refusal_id {refusal_id!r} in {self.path}")

    # --- where the subscription resumes ----------------------------------------------

    def cursor(self) -> str | None:
        with self._lock:
            rows = self._db.execute("SELECT value FROM cursor WHERE id = 1").fetchall()
        return str(rows[0][0]) if rows else None

    def save_cursor(self, cursor: str) -> None:
        with self._lock, self._transaction() as db:
            db.execute(
                "INSERT INTO cursor (id, value) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET value = excluded.value",
                (cursor,),
            )


_Written = tuple[dict[str, Any], int | None, str, str, dict[str, Any]]
"""What to store: (data, version, occurred_at, event_id, stamps), or None for no change."""


def _replaced(change: _Change, row: tuple[Any, ...] | None) -> _Written | None:
    """A reservation or room event carries the whole entity: the newer one replaces it."""
    if row is not None and change.key <= _key(row[2], row[1]):
        return None
    return change.data, change.version, change.occurred_at, change.event_id, {}


def _merged(change: _Change, row: tuple[Any, ...] | None) -> _Written | None:
    """A customer event carries some fields: each field keeps its latest value.

    Every field remembers the (occurred_at, version) it was set at (`stamps`), so an older
    event arriving late still fills the fields no newer event has set, and the result does
    not depend on the order of delivery.
    """
    fields = {
        name: value
        for name, value in change.data.items()
        if name != "updated_fields" and value is not None
    }
    for name in change.data.get("updated_fields") or []:
        fields[name] = change.data.get(name)
    stamp = [change.occurred_at, change.version]
    if row is None:
        stamps = {name: stamp for name in fields}
        return fields, change.version, change.occurred_at, change.event_id, stamps
    data_text, version, occurred_at, event_id, stamps_text = row
    data, stamps = json.loads(data_text), json.loads(stamps_text)
    changed = False
    for name, value in fields.items():
        if name not in stamps or change.key > _key(*stamps[name]):
            data[name], stamps[name] = value, stamp
            changed = True
    if change.key > _key(occurred_at, version):
        version, occurred_at, event_id = change.version, change.occurred_at, change.event_id
        changed = True
    return (data, version, occurred_at, event_id, stamps) if changed else None


def _moved(change: _Change, row: tuple[Any, ...] | None) -> _Written | None:
    """A check-in, check-out or no-show: the reservation's status and actual stay change.

    It applies unless the reservation changed strictly later; the reservation keeps its
    version, which numbers its own snapshots.
    """
    assert row is not None
    data_text, version, occurred_at, _, _ = row
    if change.key[0] < datetime.fromisoformat(occurred_at):
        return None
    data = json.loads(data_text)
    data["status"] = _MOVEMENT_STATUS[change.action]
    for name in _MOVEMENT_FIELDS:
        if change.data.get(name) is not None:
            data[name] = change.data[name]
    return data, version, change.occurred_at, change.event_id, {}
