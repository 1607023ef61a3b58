"""One worker's hub: the Faust app and everything its agents share, passed to each agent.

The agents live outside `streams/` and are found through the `hotelhub.agents` entry
points (see pyproject.toml): each names an `install(hub)` function that registers its
agents, services and health checks with this hub. A deployment adds an agent by adding
an entry point, and the platform never imports `agents/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

import faust

from streams.core.rules import RuleSettings
from streams.ops.lag import LagExporter
from streams.ops.registry_probe import PROBE_EVERY_S, RegistryProbe
from streams.runners.supervised import Sink
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from streams.worker.app import create_app
from streams.worker.channels import Channels, create_channels
from streams.worker.tables import Tables, create_tables

AGENTS_GROUP = "hotelhub.agents"
LAG_REFRESH_S = 15.0

class EventAgent(Protocol):
    """What consumes the public event topics and hands each processed event to its sinks
    (a runner with a consumer group of its own names it in `group_id`)."""

    def add_sink(self, sink: Any) -> None: ...


@dataclass
class Hub:
    settings: HubSettings
    app: faust.App
    codec: ConfluentAvroCodec
    rules: RuleSettings
    channels: Channels
    tables: Tables
    event_agents: list[EventAgent] = field(default_factory=list)
    pages: list[tuple[str, Any, type[Any]]] = field(default_factory=list)
    """Views agents serve on the web port: (path, `streams.worker.auth.Access`, view class),
    behind the same guard as the tables' queries."""
    installed: dict[str, Any] = field(default_factory=dict)
    """What each entry point's `install` returned, by entry point name (tests look inside)."""

    def add_sink(self, sink: Sink) -> None:
        """Call `sink` with every event any event agent processed (demo, tests, benchmarks)."""
        for agent in self.event_agents:
            agent.add_sink(sink)


def build_hub(settings: HubSettings) -> Hub:
    """The app, its topics and tables, with every installed agent registered."""
    app = create_app(settings)
    hub = Hub(
        settings=settings, app=app,
        codec=ConfluentAvroCodec(SchemaRegistryClient.from_settings(settings)),
        rules=settings.rules(), channels=create_channels(app, settings),
        tables=create_tables(app, settings.topic_partitions),
    )
    found = sorted(entry_points(group=AGENTS_GROUP), key=lambda point: point.name)
    if not found:
        raise RuntimeError(f"no agents installed: no entry point in group {AGENTS_GROUP!r}; "
                           "is the project installed (pip install -e .)?")
    for point in found:
        hub.installed[point.name] = point.load()(hub)
    # Every worker exports the lag of the app's groups: Faust's and each runner's own (the
    # same group-wide figures on every worker: dashboards take the max).
    groups = [settings.app_id] + [group for agent in hub.event_agents
                                  if (group := getattr(agent, "group_id", None))]
    hub.app.timer(interval=LAG_REFRESH_S)(LagExporter(settings, groups).refresh)
    hub.app.timer(interval=PROBE_EVERY_S)(RegistryProbe(settings).probe)
    from streams.worker.views import install_views  # the views read the tables above

    install_views(hub)
    return hub
