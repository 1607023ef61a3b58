"""Running the hub's Faust app: as the `hotelhub worker` process, or inside another program."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import faust

from streams.ops import health
from streams.settings import HubSettings, get_settings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.topics import ensure_topics


async def prepare(settings: HubSettings) -> None:
    """Create the topics and register the contracts before any agent reads or writes."""
    await ensure_topics(settings)
    async with SchemaRegistryClient(settings.registry_url) as registry:
        await ConfluentAvroCodec(registry).register()


def load_app() -> faust.App:
    """The app with every agent registered."""
    import agents  # noqa: F401  (registers the agents)
    import streams.worker.queries  # noqa: F401  (registers the table queries)
    from streams.worker.app import app

    return app


def run_worker(settings: HubSettings, *, loglevel: str = "info") -> None:
    """Block running a worker until it is signalled to stop."""
    asyncio.run(prepare(settings))
    app = load_app()
    worker = faust.Worker(app, loglevel=loglevel, override_logging=False)

    stopping: list[asyncio.Future[None]] = []

    def crash(error: BaseException) -> None:
        # Re-raised when the worker shuts down, so the process exits non-zero and a
        # supervisor restarts it rather than leave a worker that processes nothing.
        worker.crash_reason = error
        stopping.append(asyncio.ensure_future(worker.stop()))

    health.on_fatal(crash)
    worker.execute_from_commandline()


@asynccontextmanager
async def running_app() -> AsyncIterator[faust.App]:
    """Start the app in this event loop (demo, tests) with the process settings; stop on exit."""
    await prepare(get_settings())
    app = load_app()
    app.finalize()
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
