"""The query tables' RocksDB store: Faust's (rocksdict driver), kept honest across restarts.

Faust's RocksDB store keeps, per table partition, the changelog offset it last applied;
a restarted worker reads only the changelog after it (a warm restart). Two things go
wrong with that in Faust 0.15 as it is:

- the changelog topics were deleted and recreated (a reset, another cluster) while the
  data dir was kept: the stored offset is past the new changelog's end. Faust's recovery
  then raises `ConsistencyError` and the worker dies at every start until someone
  deletes the data dir by hand. Here the partition's store is wiped instead (logged),
  and restored from the new changelog like a cold one, before Faust's recovery reads the
  offset. A recreated changelog that has grown past the stored offset cannot be told
  from this one by offsets alone (Kafka's topic ids are not in aiokafka's metadata); a
  deployment that recreates topics clears `HOTELHUB_WORKER_DATA_DIR` with them.
- `stop` never closes the databases (it leaves them to the garbage collector), so a hub
  started again in the same process (tests, benchmarks) finds its own files locked.
  Here `stop` closes them, and writes are flushed first.

Data loss after SIGKILL (reported against older Faust versions): rocksdict writes go to
RocksDB's write-ahead log, which the OS keeps after the process dies; and the persisted
offset is only moved after the changelog record was acknowledged. `tests/worker/
test_rocksdb.py` kills a worker under writes and checks every committed value.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP
from faust.stores import rocksdb
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP, CollectionT

SCHEME = "hubrocksdb"
"""The store URL scheme (`hubrocksdb://`) this store is registered under (`register`)."""


def register() -> None:
    """Make `hubrocksdb://` name this store in Faust's store registry (idempotent)."""
    from faust import stores

    stores.STORES.aliases.setdefault(SCHEME, f"{__name__}:HubRocksDBStore")


class HubRocksDBStore(rocksdb.Store):
    """Faust's RocksDB store that wipes a partition whose stored offset the changelog
    no longer reaches, and closes its databases on stop."""

    def __init__(self, url: Any, app: Any, table: CollectionT, *,
                 options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        # The app's store URL carries the memory options (`store_url`); a table's own
        # options win. Faust pops `driver` and `read_only` from the dict it is given.
        from yarl import URL

        url = URL(str(url))
        merged = {**_options_from_query(url.query), **(options or {})}
        super().__init__(url.with_query(None), app, table, options=merged, **kwargs)

    async def assign_partitions(self, table: CollectionT, tps: set[TP],
                                generation_id: int = 0) -> None:
        ours = [tp for tp in tps if tp.topic in table.changelog_topic.topics]
        if ours:
            await self.wipe_stale(ours)
        await super().assign_partitions(table, tps, generation_id)

    async def wipe_stale(self, tps: list[TP]) -> list[int]:
        """Wipe each partition whose persisted offset is at or past its changelog's end;
        the partitions wiped."""
        persisted = {tp: self.persisted_offset(tp) for tp in tps}
        stored = {tp: offset for tp, offset in persisted.items() if offset is not None}
        if not stored:
            return []
        ends = await self._end_offsets(list(stored))
        wiped = []
        for tp, offset in stored.items():
            end = ends.get(tp)
            if end is not None and offset >= end:
                self.log.warning(
                    "%s[%d]: the local store applied changelog offset %d but the changelog "
                    "ends at %d (recreated?): wiping %s, restoring it from the changelog",
                    tp.topic, tp.partition, offset, end, self.partition_path(tp.partition))
                self._wipe(tp.partition)
                wiped.append(tp.partition)
        return wiped

    def _wipe(self, partition: int) -> None:
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()
        self._key_index.clear()
        shutil.rmtree(self.partition_path(partition), ignore_errors=True)

    async def _end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        servers = [url.authority for url in self.app.conf.broker]
        reader = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                                  **credentials_to_aiokafka_auth(self.app.conf.broker_credentials),
                                  isolation_level="read_uncommitted")
        await asyncio.wait_for(reader.start(), timeout=30)
        try:
            ends = await asyncio.wait_for(
                reader.end_offsets([KafkaTP(tp.topic, tp.partition) for tp in tps]),
                timeout=30)
        finally:
            await reader.stop()
        return {TP(tp.topic, tp.partition): end for tp, end in ends.items()}

    async def stop(self) -> None:
        for db in list(self._dbs.values()):
            try:
                db.flush(wait=True)
            finally:
                db.close()
        self._dbs.clear()
        await super().stop()


_INT_OPTIONS = ("block_cache_size", "write_buffer_size", "max_write_buffer_number",
                "target_file_size_base", "max_open_files", "block_cache_compressed_size")


def _options_from_query(query: Any) -> dict[str, Any]:
    options: dict[str, Any] = {name: int(query[name]) for name in _INT_OPTIONS if name in query}
    if "driver" in query:
        options["driver"] = query["driver"]
    return options


def store_url(options: dict[str, Any]) -> str:
    """The app's `store` setting: this store, with these `RocksDBOptions` for every table."""
    from urllib.parse import urlencode

    return f"{SCHEME}://?{urlencode(options)}"


def store_options(*, block_cache_bytes: int, write_buffer_bytes: int, max_open_files: int,
                  ) -> dict[str, Any]:
    """`RocksDBOptions` of one table partition's store for a small node: one per table
    partition, so the node's RocksDB memory is about partitions x tables x
    (block cache + 2 write buffers)."""
    return {
        "driver": "rocksdict",
        "block_cache_size": block_cache_bytes,
        "block_cache_compressed_size": 0,
        "write_buffer_size": write_buffer_bytes,
        "max_write_buffer_number": 2,
        "target_file_size_base": 4 * write_buffer_bytes,
        "max_open_files": max_open_files,
    }
