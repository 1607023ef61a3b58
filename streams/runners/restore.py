"""A hotel partition's state read back from the compacted state log `<app>.hotel-state`.

The new owner of partition p restores everything committed to p's state log
(read_committed), last value per key, before it reads an event of p.

Restoring is reading, not parsing: 100k customers and 5k rooms took 15-24 s when every
value was validated into its model as it arrived (`model_validate_json`, ~90% of the
time), and about 3 s when each value is kept as the raw JSON bytes and validated on its
first read (`RestoredStates`): most restored entities are never read before their next
change overwrites them, and a read costs one validation (~30 µs) once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_values

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from streams.core.step import MODELS
from streams.runners.effects import split_state_key
from streams.settings import HubSettings
from streams.wire.topics import state_topic

log = logging.getLogger(__name__)

State = dict[tuple[str, bytes], Any]

FETCH_BYTES = 64 * 1024 * 1024
"""Bytes one fetch of the restore may return (`fetch_max_bytes`), of one partition too."""
FETCH_RECORDS = 50_000
"""Records one `getmany` of the restore returns at most."""


class RestoredStates(State):
    """A partition's states: models, or the raw JSON bytes of the state log, validated into
    their model on first read (`[]`, `get`, `items`, `values`) and kept so.

    A value that does not validate is reported and dropped: it reads as absent, as it did
    when it was skipped during the restore; the next change of that entity writes it
    whole again. Models are never `bytes`, so a `bytes` value is one not read yet.
    """

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def _validated(self, key: tuple[str, bytes], value: Any) -> Any:
        if not isinstance(value, bytes):
            return value
        try:
            state = MODELS[key[0]].model_validate_json(value)
        except (ValidationError, KeyError, ValueError) as exc:
            log.error("state log %s (%r) does not validate, skipped: %s", self.where, key, exc)
            super().pop(key, None)
            return None
        super().__setitem__(key, state)
        return state

    def __getitem__(self, key: tuple[str, bytes]) -> Any:
        return self._validated(key, super().__getitem__(key))

    def get(self, key: tuple[str, bytes], default: Any = None) -> Any:
        if not super().__contains__(key):
            return default
        state = self._validated(key, super().__getitem__(key))
        return default if state is None else state

    def validate_all(self) -> None:
        for key, value in list(super().items()):
            self._validated(key, value)

    def items(self) -> dict_items[tuple[str, bytes], Any]:
        self.validate_all()
        return super().items()

    def values(self) -> dict_values[tuple[str, bytes], Any]:
        self.validate_all()
        return super().values()

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return super().__iter__()

    def pending(self) -> int:
        """Values not validated yet."""
        return sum(1 for value in super().values() if isinstance(value, bytes))


async def restore_partition(settings: HubSettings, partition: int) -> State:
    """Everything committed to the state log of this partition, last value per key.

    Values stay raw until read (`RestoredStates`); a record of a tag the hub does not
    know is reported with its offset and skipped.
    """
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        **settings.kafka_auth(),
        isolation_level="read_committed",
        enable_auto_commit=False,
        fetch_max_bytes=FETCH_BYTES,
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_wait_ms=50,
    )
    await reader.start()
    try:
        tp = TopicPartition(state_topic(settings), partition)
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        states = RestoredStates(f"{tp.topic}[{partition}]")
        put, drop = dict.__setitem__, dict.pop
        while await reader.position(tp) < end:
            batch = await reader.getmany(tp, timeout_ms=1000, max_records=FETCH_RECORDS)
            for record in batch.get(tp, ()):
                if record.key is None:
                    continue
                tag, key = split_state_key(record.key)
                if record.value is None:
                    drop(states, (tag, key), None)
                elif tag in MODELS:
                    put(states, (tag, key), record.value)
                else:
                    log.error("state log %s offset %d (%r) does not validate, skipped: "
                              "unknown state tag %r", tp, record.offset, record.key, tag)
        return states
    finally:
        await reader.stop()
