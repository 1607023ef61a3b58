"""Reading the hub's dead-letter topic from its beginning to the end offsets seen at start, so
a reader ends by itself while workers keep writing: `hotelhub deadletter` and the gateway's
live board share it. What a record says is `streams.wire.deadletters`'.
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from streams.core.exceptions import BrokerUnavailable, ConfigurationError
from streams.core.kinds import DEADLETTER_TOPIC
from streams.runners.admin import partition_counts
from streams.settings import HubSettings
from streams.wire.deadletters import DeadLetter, parse_dead_letter


async def read_hub_dead_letters(settings: HubSettings, *, stall_s: float) -> list[DeadLetter]:
    """Every committed dead letter up to the end offsets seen at start, in offset order."""
    topic = settings.topic(DEADLETTER_TOPIC)
    partitions = (await partition_counts(settings, {topic})).get(topic)
    if partitions is None:
        raise ConfigurationError(
            f"dead-letter topic {topic} does not exist on {settings.bootstrap_servers} "
            "(has a worker run with this HOTELHUB_TOPIC_PREFIX?)"
        )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        **settings.kafka_auth(),
        client_id="hotelhub-deadletter",
        isolation_level="read_committed",  # letters of aborted stay transactions never happened
        enable_auto_commit=False,
        request_timeout_ms=max(int(settings.connect_timeout_s * 1000), 5000),
    )
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        await consumer.stop()
        raise BrokerUnavailable(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}"
                                ) from exc
    letters: list[DeadLetter] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        positions = {tp: await consumer.position(tp) for tp in tps}
        last_progress = time.monotonic()
        while pending := [tp for tp in tps if positions[tp] < ends[tp]]:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                letters.extend(
                    parse_dead_letter(
                        partition=record.partition, offset=record.offset,
                        timestamp_ms=record.timestamp, key=record.key, value=record.value,
                        headers=record.headers,
                    )
                    for record in records if record.offset < ends[tp]
                )
            moved = {tp: await consumer.position(tp) for tp in pending}
            if any(moved[tp] != positions[tp] for tp in pending):
                last_progress = time.monotonic()  # control records move it too
            positions.update(moved)
            if time.monotonic() - last_progress > stall_s:
                where = ", ".join(f"{tp.partition} at {positions[tp]} of {ends[tp]}"
                                  for tp in pending)
                raise BrokerUnavailable(
                    f"reading {topic} made no progress for {stall_s:g} s (partition {where})"
                )
    except KafkaError as exc:
        raise BrokerUnavailable(f"reading {topic} failed: {exc}") from exc
    finally:
        await consumer.stop()
    letters.sort(key=lambda letter: (letter.partition, letter.offset))
    return letters
