"""Every topic name the hub uses, and the partitions and configs it creates them with
(`streams.runners.admin`: brokers here run with auto-creation off)."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.core.kinds import (
    DEADLETTER_TOPIC,
    DELIVERY_LOG_TOPIC,
    POLICIES,
    REFUSAL_TOPIC,
    WEBHOOK_DEADLETTER_TOPIC,
    System,
    outbox_topic,
)
from streams.settings import HubSettings

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def hub_topics(settings: HubSettings) -> list[TopicSpec]:
    """Event and refusal topics keep `event_retention_days` (7) for replay and resume; dead
    letters (the hub's and the webhooks') keep 30 days for repair, the delivery log 30 for
    audit. Refusals are keyed like the refused event, so they share its partitions."""
    events = {"retention.ms": str(settings.event_retention_days * DAY_MS),
              "cleanup.policy": "delete"}
    specs = [
        TopicSpec(settings.topic(policy.topic), settings.topic_partitions, events)
        for policy in POLICIES.values()
    ]
    specs.append(TopicSpec(settings.topic(REFUSAL_TOPIC), settings.topic_partitions, events))
    specs.append(TopicSpec(settings.topic(DEADLETTER_TOPIC), 1,
                           {"retention.ms": str(30 * DAY_MS)}))
    specs.append(TopicSpec(settings.topic(WEBHOOK_DEADLETTER_TOPIC), settings.topic_partitions,
                           {"retention.ms": str(30 * DAY_MS)}))
    specs.append(TopicSpec(settings.topic(DELIVERY_LOG_TOPIC), settings.topic_partitions,
                           {"retention.ms": str(30 * DAY_MS)}))
    specs += [TopicSpec(topic, 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0",
                                    "segment.ms": str(60 * 60 * 1000)})
              for topic in outbox_topics(settings)]
    return specs


CLIENT_SYSTEMS = (System.HOTEL_PMS, System.HOTEL_MEMBER, System.HOTEL_SAAS)
"""The systems that run the client SDK (`streams.client`), each with an outbox topic."""


def outbox_topics(settings: HubSettings) -> list[str]:
    """Each client system's sync checkpoints (compacted, keyed by client id): one topic per
    system, so the broker's ACLs keep each to its own."""
    return [settings.topic(outbox_topic(system.value)) for system in CLIENT_SYSTEMS]


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


def webhook_endpoints_topic(settings: HubSettings) -> str:
    """Webhook registrations (compacted, keyed by endpoint id), shared by every gateway."""
    return f"{settings.app_id}.webhook-endpoints"


def gateway_requests_topic(settings: HubSettings) -> str:
    """Idempotency keys of `POST /events` answered (compacted, kept a day)."""
    return f"{settings.app_id}.gateway-requests"


def gateway_topics(settings: HubSettings) -> list[TopicSpec]:
    """The gateway's own topics; it creates them (and the hub's) when missing."""
    return [
        TopicSpec(webhook_endpoints_topic(settings), 1,
                  {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}),
        TopicSpec(gateway_requests_topic(settings), 1,
                  {"cleanup.policy": "compact,delete", "retention.ms": str(DAY_MS)}),
    ]


def webhook_group(settings: HubSettings) -> str:
    """The consumer group whose members share the webhook deliveries of every partition."""
    return f"{settings.app_id}-gateway-webhooks"
