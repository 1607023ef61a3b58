"""Every topic name the hub uses, and the partitions and configs it creates them with
(`streams.runners.admin`: brokers here run with auto-creation off)."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, REFUSAL_TOPIC
from streams.settings import HubSettings

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def hub_topics(settings: HubSettings) -> list[TopicSpec]:
    """Event and refusal topics keep 7 days for replay and resume; dead letters keep 30
    days for repair. Refusals are keyed like the refused event, so they share its partitions."""
    events = {"retention.ms": str(7 * DAY_MS), "cleanup.policy": "delete"}
    specs = [
        TopicSpec(settings.topic(policy.topic), settings.topic_partitions, events)
        for policy in POLICIES.values()
    ]
    specs.append(TopicSpec(settings.topic(REFUSAL_TOPIC), settings.topic_partitions, events))
    specs.append(TopicSpec(settings.topic(DEADLETTER_TOPIC), 1,
                           {"retention.ms": str(30 * DAY_MS)}))
    return specs


def state_topic(settings: HubSettings) -> str:
    """The hotel processor's committed state log (compacted), partitioned by hotel."""
    return f"{settings.app_id}.hotel-state"


def hotel_events_topic(settings: HubSettings) -> str:
    """Every event re-keyed to its hotel's partition, whichever partitioner produced it."""
    return f"{settings.app_id}.hotel-events"


def report_facts_topic(settings: HubSettings) -> str:
    """What each stay and room contributes to the reports' business days, one partition per
    hotel (the hotel processor writes it in its transactions; `agents.reports` reads it)."""
    return f"{settings.app_id}.report-facts"
