"""The client's SQLite files (outbox and cache): opened the same way, versioned the same way,
written in the same short transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal


class SchemaTooNew(Exception):
    """The file was written by a newer client; run that client, or one at least as new."""


def open_store(path: Path, *, synchronous: Literal["FULL", "NORMAL"], schema: str,
               version: int, error: type[SchemaTooNew]) -> sqlite3.Connection:
    """A connection to `path` in WAL mode with its schema at `version` (created when new).

    `synchronous` is FULL where a commit must survive a power cut (the outbox) and NORMAL
    where the file can be rebuilt from the hub (the cache). Autocommit mode: every write
    goes through `transaction`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        with transaction(db):
            (found,) = db.execute("PRAGMA user_version").fetchone()
            if found > version:
                raise error(f"{path} has schema version {found}; this client knows up to "
                            f"{version}")
            if found == 0:
                for statement in schema.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, committed on leaving (rolled back on an error)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
