"""The Faust application every agent and table belongs to, built from the settings given.

Nothing is built at import: `create_app` is called by the worker (`streams.worker.hub`),
so a test or benchmark passes its own settings instead of editing the environment
before an import. The hub creates its topics before the worker starts (the broker does
not auto-create); Faust creates its own changelog topics.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.settings import HubSettings
from streams.worker import patches, stores


def faust_options(settings: HubSettings) -> dict[str, Any]:
    brokers = [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]
    options: dict[str, Any] = {
        "broker": brokers,
        "store": table_store(settings),
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "processing_guarantee": settings.processing_guarantee,
        "producer_acks": -1,
        # Faust's default session is 60 s: a worker restarted after a crash would wait that
        # long for its dead predecessor to leave the group before serving.
        "broker_session_timeout": settings.consumer_session_timeout_s,
        "broker_heartbeat_interval": settings.consumer_heartbeat_interval_s,
        "web_port": settings.web_port,
        "web_bind": settings.web_bind,
        "web_host": settings.web_host,
        "timezone": settings.timezone,
        # Only the hub's own pages (streams.worker.views, behind streams.worker.auth): Faust's
        # would show table data and the cluster's workers to anyone, past the query API's
        # checks. The routing reads the assignor (streams.worker.routing), not /router.
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_metrics_enabled": False,
    }
    options["datadir"] = str(settings.data_dir)
    credentials = broker_credentials(settings)
    if credentials is not None:
        options["broker_credentials"] = credentials
    return options


def broker_credentials(settings: HubSettings) -> faust.SASLCredentials | None:
    """Faust's form of `settings.kafka_auth()`: its consumer, producer and admin all use it."""
    auth = settings.kafka_auth()
    if "sasl_mechanism" not in auth:
        return None
    return faust.SASLCredentials(
        username=auth["sasl_plain_username"], password=auth["sasl_plain_password"],
        mechanism=auth["sasl_mechanism"], ssl_context=auth.get("ssl_context"),
    )


def table_store(settings: HubSettings) -> str:
    """The query tables' store: RocksDB in the app's data dir (`streams.worker.stores`: the
    rocksdict driver, memory sized for a small node, stale partitions wiped), or memory."""
    if settings.table_store == "memory":
        return "memory://"
    return stores.store_url(stores.store_options(
        block_cache_bytes=settings.rocksdb_block_cache_bytes,
        write_buffer_bytes=settings.rocksdb_write_buffer_bytes,
        max_open_files=settings.rocksdb_max_open_files))


def create_app(settings: HubSettings) -> faust.App:
    """A new app for these settings; the Faust fixes are installed (and checked) first."""
    patches.install()
    stores.register()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only its last part
    return faust.App(settings.app_id, autodiscover=False, **faust_options(settings))
