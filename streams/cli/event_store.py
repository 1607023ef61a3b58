"""`hotelhub storage migrate|sink|replay|prune`: the Event Storage's schema and its sink.

They act as the hub identity on Kafka (the sink reads every hub topic) and use
DATABASE_URL, or the embedded PostgreSQL of `hotelhub storage up`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer
from rich.console import Console

from streams.cli.events import guard
from streams.settings import get_settings
from streams.storage.database import connect_blocking
from streams.storage.partitions import drop_expired
from streams.storage.records import STORED_TOPICS
from streams.storage.schema import migrate as apply_migrations
from streams.storage.schema import pending
from streams.storage.sink import EventSink, SinkStats, quiet_collector

out = Console(soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(migrate)
    app.command()(sink)
    app.command()(replay)
    app.command()(prune)


def migrate(
    check: Annotated[bool, typer.Option(
        "--check", help="Only list what is pending; exit 1 if anything is")] = False,
) -> None:
    """Bring the Event Storage's schema up to date (versioned migrations, each applied once)."""
    dsn = guard(lambda: get_settings().database_dsn())
    if check:
        todo = guard(lambda: pending(dsn))
        out.print("pending: " + ", ".join(todo) if todo else "schema up to date")
        raise typer.Exit(1 if todo else 0)
    applied = guard(lambda: apply_migrations(dsn))
    out.print("applied: " + ", ".join(applied) if applied else "schema already up to date")


def sink(
    loglevel: Annotated[str, typer.Option(help="error, warning, info or debug")] = "info",
) -> None:
    """Store every record of the hub's topics in the Event Storage until stopped (SIGTERM);
    start more to share the partitions (one consumer group)."""
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings().acting_as("hotel-hub")

    async def run() -> SinkStats:
        running = EventSink(settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, running.stop)
        out.print(f"sink: {', '.join(STORED_TOPICS)} -> Event Storage "
                  f"(group {settings.storage_group})")
        return await running.run()

    quiet_collector()
    stats = guard(lambda: asyncio.run(run()))
    out.print(f"sink stopped: {stats.read} records read, {stats.inserted} new")


def replay(
    topic: Annotated[list[str] | None, typer.Option(
        help="A hub topic (repeat; default: every topic the storage keeps)")] = None,
) -> None:
    """Read topics from their start to their present end into the Event Storage (a backfill):
    records already stored are skipped, so replaying twice stores nothing twice."""
    settings = get_settings().acting_as("hotel-hub")
    chosen = topic or list(STORED_TOPICS)
    quiet_collector()
    stats = guard(lambda: asyncio.run(EventSink(settings, topics=chosen, replay=True).run()))
    out.print(f"replayed {', '.join(chosen)}: {stats.read} records read, {stats.inserted} "
              f"new, {stats.duplicates} already stored ({stats.seconds:.1f} s)")


def prune() -> None:
    """Drop the monthly partitions older than HOTELHUB_STORAGE_RETENTION_MONTHS now (the
    sink also does it hourly)."""
    settings = get_settings()

    def run() -> list[str]:
        with connect_blocking(settings.database_dsn()) as conn:
            return drop_expired(conn, keep_months=settings.storage_retention_months)

    dropped = guard(run)
    out.print("dropped: " + ", ".join(dropped) if dropped
              else f"nothing older than {settings.storage_retention_months} months")

