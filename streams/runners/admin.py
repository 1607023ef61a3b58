"""Creating the hub's topics (`streams.wire.topics` says which) and reaching the admin API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from streams.core.exceptions import BrokerUnavailable, ConfigurationError
from streams.settings import HubSettings
from streams.wire.topics import TopicSpec, hub_topics


async def admin_client(settings: HubSettings) -> AIOKafkaAdminClient:
    """A started admin client, or BrokerUnavailable naming where Kafka was looked for."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        **settings.kafka_auth(),
        request_timeout_ms=int(settings.connect_timeout_s * 1000),
    )
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        await admin.close()
        raise BrokerUnavailable(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}"
        ) from exc
    return admin


async def ensure_topics(settings: HubSettings, specs: Iterable[TopicSpec] | None = None) -> None:
    """Create missing topics; refuse to run on an existing one with the wrong partition count.

    A wrong count would break per-key order and co-partitioning, so it is an
    operator decision, never fixed silently.
    """
    wanted = {spec.name: spec for spec in (specs or hub_topics(settings))}
    admin = await admin_client(settings)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=spec.config,
            )
            for name, spec in wanted.items()
            if name not in existing
        ]
        if missing:
            # Another worker may create one between our list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                _raise_refused(await admin.create_topics(missing))
        present = [name for name in wanted if name in existing]
        if present:
            for meta in await admin.describe_topics(present):
                spec = wanted[meta["topic"]]
                count = len(meta["partitions"])
                if count != spec.partitions:
                    raise ConfigurationError(
                        f"topic {spec.name} has {count} partitions, the hub expects "
                        f"{spec.partitions} (HOTELHUB_TOPIC_PARTITIONS); repartitioning "
                        "changes key placement, so align the setting or the topic deliberately"
                    )
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka refused topic administration: {exc}") from exc
    finally:
        await admin.close()


def _raise_refused(response: object) -> None:
    """CreateTopics answers per topic, in the response, not by raising: a topic the broker
    refused (no CREATE grant, a bad config) must stop the start, not pass silently."""
    refused = []
    for entry in getattr(response, "topic_errors", ()):
        name, code = entry[0], entry[1]
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else for_code(code).__name__
        refused.append(f"{name}: {message} (error {code})")
    if refused:
        raise ConfigurationError(
            "Kafka refused to create topics (does this identity have CREATE on them? "
            "`hotelhub identity sync` grants the hub's): " + "; ".join(refused)
        )


async def partition_counts(settings: HubSettings, topics: set[str]) -> dict[str, int]:
    """Partitions of each of `topics` that exists; a missing topic is absent from the answer."""
    admin = await admin_client(settings)
    try:
        existing = set(await admin.list_topics()) & topics
        if not existing:
            return {}
        described = await admin.describe_topics(sorted(existing))
        return {meta["topic"]: len(meta["partitions"]) for meta in described
                if not meta["error_code"] and meta["partitions"]}
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot describe topics on {settings.bootstrap_servers}: {exc}"
                                ) from exc
    finally:
        await admin.close()
