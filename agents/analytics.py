"""Revenue and occupancy reports for the marketing and loyalty systems.

The reports are read by a plain aiokafka loop (`streams.runners.idempotent`), not a Faust
agent: handing a report on is idempotent, so at-least-once with a commit per batch is
enough, and Faust's per-record machinery cost about four times the decoding itself.
"""

from __future__ import annotations

from mode import Service

from streams.core.kinds import EventKind
from streams.ops import health
from streams.runners.idempotent import IdempotentRunner
from streams.worker.hub import Hub


def install(hub: Hub) -> IdempotentRunner:
    runner = IdempotentRunner(hub.settings, hub.codec, [EventKind.ANALYTICS], name="analytics")
    runner.on_failure(health.fatal)
    hub.event_agents.append(runner)

    def analytics_problem() -> str | None:
        if runner.failure is not None:
            return f"analytics stopped: {runner.failure!r}"
        return None if runner.waiting is None else f"analytics {runner.waiting}"

    health.register(analytics_problem)

    class AnalyticsReports(Service):
        """Runs the analytics runner for as long as the worker runs."""

        async def on_start(self) -> None:
            await runner.start()

        async def on_stop(self) -> None:
            await runner.stop()

    hub.app.service(AnalyticsReports)
    return runner
