"""A fix to faust-streaming 0.15.3 that restoring tables depends on; imported with the app.

Under `processing_guarantee="exactly_once"` Faust's consumer answers `highwaters()` from
aiokafka's `last_stable_offset`, which is only known once the partition has been
fetched. A worker that just started has fetched nothing, so recovery reads every
changelog highwater as -1, restores nothing, reports "Restore complete" and serves
(and keeps processing on) empty tables. Asking the broker instead (`end_offsets`,
which under read_committed is the last stable offset) restores what was committed.
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
