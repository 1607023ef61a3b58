"""The `_schemas` topic as the registry's durable log (aiokafka).

One partition, compacted: the latest record per key is the registry's state, so
compaction never loses a live schema and the topic never grows without bound. With
security on, every client of the log authenticates as the registry's own identity
(`schema-registry`), which the broker's ACLs let alone write the topic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from streams.core.exceptions import BrokerUnavailable, EmbeddedServiceError, RegistryError
from streams.registry.state import JsonObject, RegistryState, decode, encode

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


class KafkaRecordLog:
    """Writes with acks=all through an idempotent producer; replays from offset 0."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        replication_factor: int = 1,
        timeout_s: float = 30.0,
        kafka_auth: Mapping[str, Any] | None = None,
    ) -> None:
        """`kafka_auth`: what every Kafka client of the log is given to connect
        (`HubSettings.kafka_auth()`); None is plaintext without authentication."""
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.replication_factor = replication_factor
        self.timeout_s = timeout_s
        self._auth = dict(kafka_auth or {})
        self._producer: AIOKafkaProducer | None = None

    async def start(self, state: RegistryState) -> int:
        """Ensure the topic, replay it to its end offset into `state`; returns records read."""
        try:
            await self._ensure_topic()
            count = await self._replay(state)
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                **self._auth,
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=int(self.timeout_s * 1000),
            )
            await self._producer.start()
        except KafkaError as exc:
            await self.stop()
            raise BrokerUnavailable(
                f"Kafka at {self.bootstrap_servers} did not serve the registry topic "
                f"{self.topic!r}: {exc!r}; check `hotelhub broker status` "
                "or KAFKA_BOOTSTRAP_SERVERS"
            ) from exc
        return count

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def append(self, key: JsonObject, value: JsonObject | None) -> None:
        if self._producer is None:
            raise EmbeddedServiceError("the registry log is not started")
        await self._producer.send_and_wait(
            self.topic, key=encode(key), value=encode(value), partition=0
        )

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            **self._auth,
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        await admin.start()
        try:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=self.topic,
                        num_partitions=1,
                        replication_factor=self.replication_factor,
                        topic_configs={"cleanup.policy": "compact"},
                    )
                ]
            )
            for topic_error in response.topic_errors:
                code = topic_error[1]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise EmbeddedServiceError(
                        f"could not create registry topic {self.topic!r}: {topic_error!r}"
                    )
            policy = await self._cleanup_policy(admin)
            if policy is not None and "compact" not in policy:
                raise EmbeddedServiceError(
                    f"registry topic {self.topic!r} has cleanup.policy={policy}; it must be "
                    "compact or schemas will expire (was it auto-created?)"
                )
        finally:
            await admin.close()

    async def _cleanup_policy(self, admin: AIOKafkaAdminClient) -> str | None:
        resource = ConfigResource(ConfigResourceType.TOPIC, self.topic, {"cleanup.policy": None})
        responses: list[Any] = await admin.describe_configs([resource])
        for response in responses:
            for entry in response.resources:
                for config in entry[4]:
                    if config[0] == "cleanup.policy":
                        return str(config[1])
        return None

    async def _replay(self, state: RegistryState) -> int:
        partition = TopicPartition(self.topic, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            **self._auth,
            enable_auto_commit=False,
            isolation_level="read_committed",
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        await consumer.start()
        count = 0
        try:
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            while await consumer.position(partition) < end:
                batches = await consumer.getmany(partition, timeout_ms=1000)
                for record in batches.get(partition, []):
                    count += 1
                    self._apply(state, record.key, record.value, record.offset)
        finally:
            await consumer.stop()
        log.info("replayed %d records of %s up to offset %d", count, self.topic, end)
        return count

    @staticmethod
    def _apply(state: RegistryState, raw_key: bytes | None, raw_value: bytes | None,
               offset: int) -> None:
        try:
            key = decode(raw_key)
            if key is None:
                return
            state.apply(key, decode(raw_value))
        except (ValueError, KeyError, TypeError, RegistryError) as exc:
            log.warning("skipping unreadable registry record at offset %d: %s", offset, exc)
