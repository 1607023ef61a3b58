"""Which worker answers for a hotel, and whether this one may answer at all.

Every table is mirrored from the hotel processor's state log, one partition per hotel
(`streams.wire.partitioning`); the owner of a partition is found through the partition
assignor's table metadata, like Faust's `table_route`, but with our two-part bytes keys.
"""

from __future__ import annotations

from faust.types import AppT
from yarl import URL

from streams.ops.health import health_problem
from streams.ops.metrics import worker_serving
from streams.wire.partitioning import hotel_partition
from streams.worker.tables import Table


def not_serving_reason(app: AppT) -> str | None:
    """Why this worker's tables may be incomplete right now, or None when they are current.

    `recovery.completed` is set once the first recovery finished (Faust never clears it);
    `in_recovery` and `rebalancing` cover every later rebalance and restore; the checks
    in `streams.ops.health` say whether processing is stuck or has died.
    """
    problem = health_problem()
    if problem is not None:
        return problem
    recovery = getattr(app.tables, "recovery", None)
    if recovery is None or not recovery.completed.is_set() or app.in_recovery:
        return "tables are being restored from their changelogs"
    if app.rebalancing:
        return "partitions are being reassigned between workers"
    return None


def export_serving(app: AppT) -> None:
    """Make `hotelhub_worker_serving` this worker's `/health` answer, asked at each scrape
    (a value set by a timer could be stale exactly when the worker is stuck)."""
    worker_serving.set_function(lambda: 0.0 if not_serving_reason(app) else 1.0)


def _changelog(table: Table) -> str:
    return str(table.changelog_topic.get_topic_name())


def partition_of(app: AppT, table: Table, hotel_id: str) -> int:
    """The table partition holding a hotel's keys."""
    return hotel_partition(hotel_id, int(table.partitions or app.conf.topic_partitions))


def active_partitions(app: AppT, table: Table) -> set[int]:
    """Partitions of `table` this worker owns as active (its standby copies excluded)."""
    topic = _changelog(table)
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


def owners(app: AppT, table: Table) -> dict[int, URL]:
    """Partition -> URL of the worker that actively owns it, from the assignor's metadata."""
    topic = _changelog(table)
    return {
        partition: URL(url)
        for url, topics in app.router.table_metadata(table.name).items()
        for partition in topics.get(topic, ())
    }


def _ident(url: URL) -> tuple[str, int]:
    return (url.host or "", int(url.port or 80))


def is_me(app: AppT, url: URL) -> bool:
    return _ident(url) == _ident(URL(str(app.conf.canonical_url)))
