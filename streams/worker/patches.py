"""Two fixes to faust-streaming 0.15.3, imported with the app.

1. Restoring tables under exactly_once.

Under `processing_guarantee="exactly_once"` Faust's consumer answers `highwaters()` from
aiokafka's `last_stable_offset`, which is only known once the partition has been
fetched. A worker that just started has fetched nothing, so recovery reads every
changelog highwater as -1, restores nothing, reports "Restore complete" and serves
(and keeps processing on) empty tables. Asking the broker instead (`end_offsets`,
which under read_committed is the last stable offset) restores what was committed.

2. Reading read_committed under at_least_once too (below).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread


async def _broker_highwaters(self: Any, partitions: Iterable[Any]) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()
    offsets: Mapping[Any, int] = await consumer.end_offsets(list(partitions))
    return offsets


AIOKafkaConsumerThread._highwaters = _broker_highwaters  # type: ignore[method-assign]


_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def _read_committed_consumer(self: Any, transport: Any) -> Any:
    """Read only committed records, whatever the processing guarantee.

    Faust reads read_committed only under its own exactly_once. Our agents consume
    what the hotel processor writes in transactions (room events, the hotel state
    log); an aborted transaction's records must never reach them.
    """
    consumer = _create_worker_consumer(self, transport)
    consumer._isolation_level = "read_committed"
    return consumer


AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
    _read_committed_consumer
)
