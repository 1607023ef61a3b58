"""The durable outbox: every event the PMS publishes is committed here before it is sent.

A publish is accepted only once it is on disk (WAL, `synchronous=FULL`), so a process killed
at any moment, or a machine losing power, loses nothing it accepted; sending is a separate
step that reads `pending` in acceptance order and marks what the broker took. One process
owns an outbox at a time (an exclusive `flock` beside the file): two clients syncing one
outbox would send every event twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from streams.client.sqlite import SchemaTooNew, open_store, transaction

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    kind TEXT NOT NULL,
    document TEXT NOT NULL,
    created_offline INTEGER NOT NULL,
    accepted_at TEXT NOT NULL,
    sent_at TEXT,
    topic TEXT,
    partition INTEGER,
    offset INTEGER,
    rejected_at TEXT,
    rejection TEXT
);
CREATE INDEX outbox_by_state ON outbox (sent_at, rejected_at, seq);
"""

_ENTRY = "seq, event_id, entity, kind, document, created_offline, accepted_at"
_PENDING = "sent_at IS NULL AND rejected_at IS NULL"


class OutboxBusy(Exception):
    """Another process has this outbox open; stop it, or give this client an outbox of its own."""


class OutboxSchemaError(SchemaTooNew):
    """The outbox was written by a newer client; run that client, or one at least as new."""


@dataclass(frozen=True)
class Entry:
    seq: int
    event_id: str
    entity: str
    kind: str
    text: str
    """The event as accepted, JSON: a sync validates it straight from the text."""
    created_offline: bool
    accepted_at: datetime

    @cached_property
    def document(self) -> dict[str, Any]:
        return dict(json.loads(self.text))


@dataclass(frozen=True)
class OutboxCounts:
    pending: int
    sent: int
    """Sent and not rejected since; pruned entries are no longer counted."""
    rejected: int
    oldest_pending_at: datetime | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _utc_text(moment: datetime) -> str:
    """The stored form of a time: fixed-width UTC, so text order is time order."""
    if moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; give an aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, event_id, entity, kind, document, created_offline, accepted_at = row
    return Entry(
        seq=seq,
        event_id=event_id,
        entity=entity,
        kind=kind,
        text=document,
        created_offline=bool(created_offline),
        accepted_at=datetime.fromisoformat(accepted_at),
    )


class Outbox:
    """The outbox in the SQLite file at `path`, held by this process until `close()`.

    Every write is committed before the method returns. Raises `OutboxBusy` when another
    process holds the outbox.

        with Outbox(Path("/var/lib/pms/outbox.db")) as outbox:
            outbox.accept(event, event_id=event["event_id"], entity="R-1", kind="reservation",
                          created_offline=True)
            for entry in outbox.pending():
                ...
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lock_fd = _hold(path.with_name(path.name + ".lock"), path)
        try:
            self._db = open_store(path, synchronous="FULL", schema=_SCHEMA,
                                  version=SCHEMA_VERSION, error=OutboxSchemaError)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._closed = False

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def accept(
        self,
        document: Mapping[str, Any],
        *,
        event_id: str,
        entity: str,
        kind: str,
        created_offline: bool,
    ) -> Entry:
        """Commit `document` to the outbox; once this returns it will be sent.

        Accepting an `event_id` again returns the entry first accepted, unchanged, so a
        caller that retries after a crash cannot queue an event twice. Values JSON cannot
        hold (dates, decimals) are stored as their `str`.
        """
        text = json.dumps(dict(document), default=str, separators=(",", ":"))
        with self._lock, self._transaction() as db:
            existing = db.execute(
                f"SELECT {_ENTRY} FROM outbox WHERE event_id = ?", (event_id,)
            ).fetchall()
            if existing:
                return _entry(existing[0])
            inserted = db.execute(
                "INSERT INTO outbox (event_id, entity, kind, document, created_offline,"
                f" accepted_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING {_ENTRY}",
                (event_id, entity, kind, text, int(created_offline), _now()),
            ).fetchall()
            return _entry(inserted[0])

    def pending(self, limit: int = 1000) -> list[Entry]:
        """Entries neither sent nor rejected, oldest first: the order they must be sent in."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ENTRY} FROM outbox WHERE {_PENDING} ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [_entry(row) for row in rows]

    def entries(self) -> list[Entry]:
        """Every entry still kept (pending, sent, rejected), in acceptance order: for support
        and for checking a sync against what Kafka holds."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_ENTRY} FROM outbox ORDER BY seq").fetchall()
        return [_entry(row) for row in rows]

    def mark_sent(self, sent: Iterable[tuple[int, str | None, int | None, int | None]]) -> None:
        """Record what the broker acknowledged: (seq, topic, partition, offset), all at once.

        Entries already sent or rejected keep what they have.
        """
        at = _now()
        rows = [(at, topic, partition, offset, seq) for seq, topic, partition, offset in sent]
        with self._lock, self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET sent_at = ?, topic = ?, partition = ?, offset = ?"
                f" WHERE seq = ? AND {_PENDING}",
                rows,
            )

    def mark_sent_through(self, seq: int) -> int:
        """Mark every pending entry up to `seq` sent, when the broker already holds them all.

        Returns how many were marked; where they landed is not known, so topic, partition
        and offset stay empty.
        """
        with self._lock, self._transaction() as db:
            cursor = db.execute(
                f"UPDATE outbox SET sent_at = ? WHERE {_PENDING} AND seq <= ?", (_now(), seq)
            )
            return cursor.rowcount

    def reject(self, seq: int, reason: str) -> None:
        """Set aside an entry the hub will never take, with why, so it no longer blocks the queue.

        An entry may be rejected after it was sent (the hub refuses asynchronously); the first
        reason given is kept. Raises `KeyError` for an unknown `seq`.
        """
        with self._lock, self._transaction() as db:
            known = db.execute("SELECT rejected_at FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if known is None:
                raise KeyError(f"no outbox entry with seq {seq} in {self.path}")
            if known[0] is None:
                db.execute(
                    "UPDATE outbox SET rejected_at = ?, rejection = ? WHERE seq = ?",
                    (_now(), reason, seq),
                )

    def rejected(self) -> list[tuple[Entry, str]]:
        """Rejected entries with their reasons, oldest first, for someone to look at."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ENTRY}, rejection FROM outbox WHERE rejected_at IS NOT NULL ORDER BY seq"
            ).fetchall()
        return [(_entry(row[:-1]), row[-1]) for row in rows]

    def counts(self) -> OutboxCounts:
        """How far sending has got, for health checks and the operator."""
        with self._lock:
            pending, sent, rejected = self._db.execute(
                f"SELECT COUNT(*) FILTER (WHERE {_PENDING}),"
                " COUNT(*) FILTER (WHERE sent_at IS NOT NULL AND rejected_at IS NULL),"
                " COUNT(*) FILTER (WHERE rejected_at IS NOT NULL) FROM outbox"
            ).fetchone()
            oldest = self._db.execute(
                f"SELECT accepted_at FROM outbox WHERE {_PENDING} ORDER BY seq LIMIT 1"
            ).fetchone()
        return OutboxCounts(
            pending=pending,
            sent=sent,
            rejected=rejected,
            oldest_pending_at=None if oldest is None else datetime.fromisoformat(oldest[0]),
        )

    def last_seq(self) -> int:
        """The last seq ever given (0 for a new outbox); pruning does not lower it."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
            ).fetchone()
        return 0 if row is None else int(row[0])

    def prune(self, sent_before: datetime) -> int:
        """Delete entries sent before `sent_before` (an aware time); returns how many.

        Pending and rejected entries are never deleted.
        """
        cutoff = _utc_text(sent_before)
        with self._lock, self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?"
                " AND rejected_at IS NULL",
                (cutoff,),
            )
            return cursor.rowcount


def _hold(lock_path: Path, path: Path) -> int:
    """Take the outbox's lock file for this process, or raise `OutboxBusy`."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutboxBusy(f"outbox {path} is open in another process") from None
    except BaseException:
        os.close(fd)
        raise
    return fd
