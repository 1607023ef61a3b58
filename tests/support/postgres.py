"""The tests' Event Storage: a PostgreSQL server, and a database of the session's own in it.

The server, cheapest honest option first (as `hub_settings` picks Kafka):

1. DATABASE_URL is set (CI exports the one it started): that server; its role must be
   allowed to create databases.
2. A Docker engine answers: a `postgres:17` container for the session.
3. Otherwise the hub's embedded PostgreSQL (`hotelhub storage up`, HOTELHUB_HOME and
   HOTELHUB_STORAGE_PORT from the environment), started if it is not running and stopped
   at the end only if this session started it.

In every case the session creates a database named from its HOTELHUB_TOPIC_PREFIX and
drops it at its end (WITH FORCE, so a connection a test leaked cannot keep it), so
sessions sharing one server never see each other's rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from streams.ops.postgres import EmbeddedPostgres
from streams.settings import HubSettings

POSTGRES_IMAGE = "postgres:17"
_MAX_IDENTIFIER = 63


def session_database_name(prefix: str) -> str:
    """`test-1a2b3c4d.` -> `hotelhub_test_1a2b3c4d`: lower case, letters, digits and `_`."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", prefix.lower()).strip("_")
    if not cleaned:
        raise ValueError(f"topic prefix {prefix!r} names no database: set "
                         "HOTELHUB_TOPIC_PREFIX to letters or digits, e.g. test-1a2b3c4d.")
    return f"hotelhub_{cleaned}"[:_MAX_IDENTIFIER]


def with_database(dsn: str, name: str) -> str:
    """`dsn` (a postgresql:// URL) pointing at database `name` instead."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("DATABASE_URL must be a postgresql:// URL "
                         f"(postgresql://user:secret@host:port/db), not {parts.scheme or dsn!r}")
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def own_database(server_dsn: str, name: str) -> Iterator[str]:
    """Create database `name` on `server_dsn`'s server; yield its URL; drop it at the end.

    An existing database of that name is an error, never reused nor dropped: it may be
    another session's, or someone's data.
    """
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        try:
            conn.execute(create)
        except psycopg.errors.DuplicateDatabase:
            raise RuntimeError(
                f"database {name} exists already on the test server: another session with "
                "the same HOTELHUB_TOPIC_PREFIX runs, or one was killed (drop it by hand)"
            ) from None
    try:
        yield with_database(server_dsn, name)
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(drop)


@contextmanager
def server_dsn(settings: HubSettings, *, docker: Callable[[], bool]) -> Iterator[str]:
    """A server to make the session's database in (see the module's docstring)."""
    if settings.database_url:
        yield settings.database_url
        return
    if docker():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            yield container.get_connection_url()
        return
    storage = EmbeddedPostgres(settings)
    state = storage.up()
    try:
        yield settings.database_dsn()
    finally:
        if state.started:
            storage.down()


@contextmanager
def session_database_url(settings: HubSettings, *, docker: Callable[[], bool]) -> Iterator[str]:
    """The URL of a database of this session's own, dropped when the session ends."""
    name = session_database_name(settings.topic_prefix)
    with server_dsn(settings, docker=docker) as dsn, own_database(dsn, name) as url:
        yield url
