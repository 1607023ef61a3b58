"""What the embedded node is told: server.properties, log4j2 configs, a cluster id.

Pure functions of the settings, unit-tested without Java.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from streams.settings import HubSettings

LOOPBACK = "127.0.0.1"


def render_server_properties(settings: HubSettings, *, data_dir: Path) -> str:
    """server.properties of a single KRaft node that only listens on loopback."""
    broker = f"{LOOPBACK}:{settings.broker_port}"
    controller = f"{LOOPBACK}:{settings.controller_port}"
    lines = [
        "# Written by hotelhub on every `broker up`; edits here are overwritten.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{controller}",
        f"listeners=PLAINTEXT://{broker},CONTROLLER://{controller}",
        f"advertised.listeners=PLAINTEXT://{broker}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={data_dir}",
        f"num.partitions={settings.topic_partitions}",
        "default.replication.factor=1",
        # One node: internal topics default to 3 replicas / min ISR 2 and would never form.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        # The hub and Faust create every topic explicitly; a typo must fail, not create.
        "auto.create.topics.enable=false",
        "group.initial.rebalance.delay.ms=0",
    ]
    return "\n".join(lines) + "\n"


def render_server_log4j2(*, log_path: Path) -> str:
    """log4j2 config of the node: INFO to a size-capped file, nothing on stdout."""
    return "\n".join(
        [
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = file",
            f"appender.file.fileName = {log_path}",
            f"appender.file.filePattern = {log_path}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = info",
            "rootLogger.appenderRef.file.ref = file",
            "logger.state.name = state.change.logger",
            "logger.state.level = warn",
            "",
        ]
    )


def render_tools_log4j2() -> str:
    """log4j2 config of the CLI tools: warnings to stderr, stdout left to the tool's output."""
    return "\n".join(
        [
            "status = error",
            "appender.err.type = Console",
            "appender.err.name = err",
            "appender.err.target = SYSTEM_ERR",
            "appender.err.layout.type = PatternLayout",
            "appender.err.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = warn",
            "rootLogger.appenderRef.err.ref = err",
            "",
        ]
    )


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as Kafka's Uuid)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text
