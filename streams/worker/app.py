"""The Faust application every agent and table belongs to.

Built once from the settings at import, so a program that wants other
settings (a test's own consumer group, say) sets the environment first.
`hotelhub worker` runs it; the demo and tests start it in process. The hub
creates its topics before the worker starts (the broker does not
auto-create); Faust creates its own changelog topics.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.settings import HubSettings, get_settings
from streams.worker import patches


def faust_options(settings: HubSettings) -> dict[str, Any]:
    brokers = [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]
    options: dict[str, Any] = {
        "broker": brokers,
        "store": "memory://",
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "processing_guarantee": settings.processing_guarantee,
        "producer_acks": -1,
        "web_port": settings.web_port,
        "web_bind": settings.web_bind,
        "web_host": settings.web_host,
        "timezone": settings.timezone,
    }
    options["datadir"] = str(settings.worker_data_dir or settings.home / "worker")
    return options


patches.install()  # checks the Faust and aiokafka versions, then fixes them
app = faust.App(get_settings().app_id, autodiscover=False, **faust_options(get_settings()))
