"""Consumer group lag as monitoring should see it, exported as a Prometheus gauge.

Lag is, per partition a group has committed on, the read_committed end offset (the last
stable offset: what a read_committed consumer can reach) minus the offset the group
committed. On topics written in transactions the last offset is a commit marker no record
occupies, so a group that commits "last record + 1" shows lag 1 for ever; the hub's groups
commit their consumer's position instead (the hotel processor, and Faust through
`streams.worker.patches`), so a group that is done reads 0.

`LagExporter.refresh` reads the figures (opening and closing its own clients each time) and
sets `hotelhub_consumer_group_lag_records{group,topic,partition}`; a worker runs it
periodically. No Faust here.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.ops.metrics import consumer_group_lag_records
from streams.settings import HubSettings

log = logging.getLogger(__name__)

Lag = dict[tuple[str, TopicPartition], int]
"""(group, partition) -> records not committed past."""


def hub_groups(settings: HubSettings) -> list[str]:
    """The worker's consumer groups: the Faust app's (`app_id`) and the hotel processor's
    (`settings.processor_group`, streams.runners.hotel_processor)."""
    return [settings.app_id, settings.processor_group]


async def group_lag(settings: HubSettings, groups: list[str]) -> Lag:
    """Each group's lag on every partition it committed an offset for."""
    timeout = settings.connect_timeout_s
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    ends = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                            **settings.kafka_auth(),
                            enable_auto_commit=False, isolation_level="read_committed")
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(ends.start(), timeout)
        committed: dict[tuple[str, TopicPartition], int] = {}
        for group in groups:
            offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), timeout)
            committed.update({(group, tp): meta.offset for tp, meta in offsets.items()
                              if meta.offset >= 0})
        if not committed:
            return {}
        end = await asyncio.wait_for(
            ends.end_offsets(sorted({tp for _, tp in committed})), timeout)
        return {(group, tp): max(end[tp] - offset, 0)
                for (group, tp), offset in committed.items()}
    finally:
        await ends.stop()
        await admin.close()


class LagExporter:
    """Keeps the lag gauge of some groups (by default the worker's own) up to date."""

    def __init__(self, settings: HubSettings, groups: list[str] | None = None) -> None:
        self.settings = settings
        self.groups = groups if groups is not None else hub_groups(settings)
        self._exported: set[tuple[str, str, str]] = set()

    async def refresh(self, *_: object) -> Lag:
        """Read the lag and set the gauge (partitions no longer reported are removed).

        Takes and ignores any arguments, so it can be a Faust timer (which passes the app).
        A broker that does not answer leaves the gauge as it was and is logged.
        """
        try:
            lag = await group_lag(self.settings, self.groups)
        except Exception as exc:
            log.warning("consumer group lag not refreshed: %r", exc)
            return {}
        exported = set()
        for (group, tp), records in lag.items():
            labels = (group, tp.topic, str(tp.partition))
            consumer_group_lag_records.labels(*labels).set(records)
            exported.add(labels)
        for labels in self._exported - exported:
            consumer_group_lag_records.remove(*labels)
        self._exported = exported
        return lag
