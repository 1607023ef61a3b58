"""The Event Storage's monthly partitions: made before a month's first row, dropped after
the retention.

Months are calendar months in UTC: `occurred_at` is a timestamptz, and a hotel's local
month differs from UTC's by hours only at its edges, which matters for dropping (we keep
whole months, so the first hours of a month may live one retention step longer) and not
for finding rows (a query on time ranges scans the partitions it overlaps).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

PARENT = "event_store"
_NAME = re.compile(rf"^{PARENT}_y(\d{{4}})m(\d{{2}})$")


def month_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date().replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_back(month: date, count: int) -> date:
    """The first of the month `count` months before `month`."""
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def month_of_partition(name: str) -> date | None:
    found = _NAME.match(name)
    return date(int(found[1]), int(found[2]), 1) if found else None


def ensure_partitions(conn: psycopg.Connection, months: set[date]) -> None:
    """Create the partitions of `months` that do not exist yet, each in its own short
    transaction under an advisory lock, so sinks racing for a new month do not fail."""
    for month in sorted(months):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                               (partition_name(month),))
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} "
                "FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(partition_name(month)), sql.Identifier(PARENT),
                sql.Literal(f"{month.isoformat()} 00:00:00+00"),
                sql.Literal(f"{next_month(month).isoformat()} 00:00:00+00")))


def partitions(conn: psycopg.Connection) -> dict[date, str]:
    """The monthly partitions that exist, by month."""
    cursor = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s", (PARENT,))
    found = {}
    for (name,) in cursor.fetchall():
        month = month_of_partition(name)
        if month is not None:
            found[month] = name
    return found


def drop_expired(conn: psycopg.Connection, *, keep_months: int,
                       today: date | None = None) -> list[str]:
    """Drop the partitions of months before the `keep_months` most recent (this month
    counts as one); returns the dropped names. Dropping a partition is instant, unlike
    deleting its rows."""
    current = month_of(datetime.now(UTC)) if today is None else today.replace(day=1)
    oldest_kept = months_back(current, keep_months - 1)
    dropped = []
    for month, name in sorted(partitions(conn).items()):
        if month < oldest_kept:
            with conn.transaction():
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped
