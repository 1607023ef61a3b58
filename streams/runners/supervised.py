"""What every runner's loop has in common: it runs as a task, hands what it processed to
sinks, and says when it died, so that the worker stops with a non-zero exit rather than
stay up processing nothing."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from streams.core.models import HotelEvent
from streams.settings import HubSettings

log = logging.getLogger(__name__)

Sink = Callable[[HotelEvent], Any]
"""Called with each processed event, in order; may return an awaitable (awaited before the
next). Tests, the demo and the benchmarks listen this way."""


def group_consumer(settings: HubSettings, group_id: str, **options: Any) -> AIOKafkaConsumer:
    """A runner's consumer: its own group, committed records only, offsets committed by the
    runner when its work is done, a new group reading from the start, and the worker's
    session timeout (a crashed member's partitions move on after it, not after Kafka's)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=group_id, client_id=group_id,
        **settings.kafka_auth(),
        isolation_level="read_committed", enable_auto_commit=False,
        auto_offset_reset="earliest", **{**session_options(settings), **options})


def session_options(settings: HubSettings) -> dict[str, int]:
    """aiokafka's group liveness settings from the hub's (`consumer_session_timeout_s`)."""
    return {"session_timeout_ms": round(settings.consumer_session_timeout_s * 1000),
            "heartbeat_interval_ms": round(settings.consumer_heartbeat_interval_s * 1000)}


class SupervisedLoop:
    """A runner's loop (`_run`) as a task of its own, watched."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failure: BaseException | None = None
        """Why the loop stopped; set only if it died, which the worker reports and exits on."""
        self.waiting: str | None = None
        """Why records are waiting right now (the registry is away), for /health."""
        self._task: asyncio.Task[None] | None = None
        self._sinks: list[Sink] = []
        self._on_failure: list[Callable[[BaseException], None]] = []

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def on_failure(self, callback: Callable[[BaseException], None]) -> None:
        """Called once if the loop dies."""
        self._on_failure.append(callback)

    async def _run(self) -> None:
        raise NotImplementedError

    async def assign(self, assigned: Iterable[TopicPartition]) -> None:
        """This member was given `assigned` (nothing to do unless a runner keeps state)."""

    async def revoke(self, revoked: Iterable[TopicPartition]) -> None:
        """`revoked` move to another member; commit what is done of them first."""

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        return _Rebalance(self)

    def _launch(self) -> None:
        self._task = asyncio.create_task(self._guarded(), name=self.name)

    async def _halt(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # A loop that died has said why already (`failure`); stopping is not an error.
            await asyncio.gather(self._task, return_exceptions=True)

    async def _tell(self, event: HotelEvent) -> None:
        for sink in self._sinks:
            result = sink(event)
            if inspect.isawaitable(result):
                await result

    async def _guarded(self) -> None:
        try:
            await self._run()
        except Exception as exc:
            self.failure = exc
            log.critical("the %s stopped: %r", self.name, exc, exc_info=exc)
            for callback in self._on_failure:
                callback(exc)
            raise


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: SupervisedLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.loop.revoke(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.loop.assign(assigned)
