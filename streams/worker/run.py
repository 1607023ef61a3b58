"""Running the hub's Faust app: as the `hotelhub worker` process, or inside another program."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import faust
import mode.loop

from streams.ops import health
from streams.runners.admin import ensure_topics
from streams.runners.supervised import Sink
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from streams.worker.hub import Hub, build_hub


async def prepare(settings: HubSettings) -> None:
    """Create the topics and register the contracts before any agent reads or writes."""
    await ensure_topics(settings)
    async with SchemaRegistryClient.from_settings(settings) as registry:
        await ConfluentAvroCodec(registry).register()


def run_worker(settings: HubSettings, *, loglevel: str = "info") -> None:
    """Block running a worker until it is signalled to stop.

    Every event loop of the process runs on uvloop: the worker's, and the one of the thread
    Faust runs its Kafka consumer in (mode makes that loop with the policy set here).
    """
    mode.loop.use("uvloop")
    asyncio.run(prepare(settings))
    hub = build_hub(settings)
    worker = faust.Worker(hub.app, loglevel=loglevel, override_logging=False)

    stopping: list[asyncio.Future[None]] = []

    def crash(error: BaseException) -> None:
        # Re-raised when the worker shuts down, so the process exits non-zero and a
        # supervisor restarts it rather than leave a worker that processes nothing.
        worker.crash_reason = error
        stopping.append(asyncio.ensure_future(worker.stop()))

    health.on_fatal(crash)
    worker.execute_from_commandline()


@asynccontextmanager
async def running_hub(settings: HubSettings, *, sinks: Iterable[Sink] = ()
                      ) -> AsyncIterator[Hub]:
    """Start a hub in this event loop (demo, tests, benchmarks); stop it on exit.

    `sinks` see every event the event agents processed, from the first one on.
    """
    await prepare(settings)
    hub = build_hub(settings)
    for sink in sinks:
        hub.add_sink(sink)
    hub.app.finalize()
    await hub.app.start()
    try:
        yield hub
    finally:
        await hub.app.stop()
