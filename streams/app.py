"""The Faust application every agent and table belongs to.

Built once from the settings; `hotelhub worker` runs it, tests start it in
process. Topics are created by the hub before the worker starts (the broker
does not auto-create), Faust creates its own changelog topics.
"""

from __future__ import annotations

import faust

from streams.settings import HubSettings, get_settings


def faust_options(settings: HubSettings) -> dict[str, object]:
    brokers = [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]
    options: dict[str, object] = {
        "broker": brokers,
        "store": "memory://",
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "web_port": settings.web_port,
        "web_bind": "127.0.0.1",
        "web_host": "127.0.0.1",
        "timezone": settings.timezone,
    }
    if settings.worker_data_dir is not None:
        options["datadir"] = str(settings.worker_data_dir)
    return options


def configure(app: faust.App, settings: HubSettings) -> None:
    """Point the app at other settings before it starts (tests, `hotelhub demo`)."""
    app.conf.id = settings.app_id
    for name, value in faust_options(settings).items():
        setattr(app.conf, name, value)


app = faust.App(get_settings().app_id, autodiscover=False, **faust_options(get_settings()))
