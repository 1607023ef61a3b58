"""A hotel partition's state read back from the compacted state log `<app>.hotel-state`.

The new owner of partition p restores everything committed to p's state log
(read_committed), last value per key, before it reads an event of p.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from streams.core.step import MODELS
from streams.runners.effects import split_state_key
from streams.settings import HubSettings
from streams.wire.topics import state_topic

log = logging.getLogger(__name__)

State = dict[tuple[str, bytes], Any]


async def restore_partition(settings: HubSettings, partition: int) -> State:
    """Everything committed to the state log of this partition, last value per key.

    A record that no longer validates is reported with its offset and skipped; the
    next change of that entity writes it whole again.
    """
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await reader.start()
    try:
        tp = TopicPartition(state_topic(settings), partition)
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        states: State = {}
        while await reader.position(tp) < end:
            batch = await reader.getmany(tp, timeout_ms=1000, max_records=10_000)
            for record in batch.get(tp, []):
                if record.key is None:
                    continue
                tag, key = split_state_key(record.key)
                if record.value is None:
                    states.pop((tag, key), None)
                    continue
                model = MODELS.get(tag)
                try:
                    if model is None:
                        raise ValueError(f"unknown state tag {tag!r}")
                    states[tag, key] = model.model_validate_json(record.value)
                except (ValidationError, ValueError) as exc:
                    log.error("state log %s offset %d (%r) does not validate, skipped: %s",
                              tp, record.offset, record.key, exc)
        return states
    finally:
        await reader.stop()
