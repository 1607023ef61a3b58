"""What the embedded node is told: server.properties, log4j2 configs, a cluster id,
and the client properties Kafka's CLI tools authenticate with.

Pure functions of the settings, unit-tested without Java.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from streams.core.exceptions import ConfigurationError
from streams.settings import HubSettings

LOOPBACK = "127.0.0.1"
BROKER_USER = "hotelhub-broker"
"""The node's own principal: inter-broker and controller traffic, and the one super user.

Every other client is an identity of the store (`streams.core.identities`) and gets exactly
what its ACLs allow (`streams.wire.acls`); the operator identity, not this user, is what
people and CI use, so it can be rotated and revoked like any other.
"""
SCRAM_MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def render_server_properties(
    settings: HubSettings, *, data_dir: Path, broker_secret: str | None = None
) -> str:
    """server.properties of a single KRaft node that only listens on loopback.

    Secured (`settings.secured`), clients authenticate with SCRAM-SHA-512 and the
    StandardAuthorizer denies whatever no ACL allows; the text then holds `broker_secret`,
    so the caller writes it readable by its owner only.
    """
    broker = f"{LOOPBACK}:{settings.broker_port}"
    controller = f"{LOOPBACK}:{settings.controller_port}"
    listener = "SASL_PLAINTEXT" if settings.secured else "PLAINTEXT"
    lines = [
        "# Written by hotelhub on every `broker up`; edits here are overwritten.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{controller}",
        f"listeners={listener}://{broker},CONTROLLER://{controller}",
        f"advertised.listeners={listener}://{broker}",
        "controller.listener.names=CONTROLLER",
        f"inter.broker.listener.name={listener}",
        f"listener.security.protocol.map={listener}:{listener},CONTROLLER:{listener}",
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
    if settings.secured:
        lines += _security_lines(listener, broker_secret)
    return "\n".join(lines) + "\n"


def _security_lines(listener: str, broker_secret: str | None) -> list[str]:
    """SASL on both listeners and the KRaft authorizer, with nothing allowed by default.

    The controller listener takes PLAIN: KRaft keeps SCRAM credentials in the metadata log
    the controller serves, so SCRAM cannot authenticate the controller's own connections.
    That listener is loopback-only and only the node itself uses it.
    """
    if not broker_secret:
        raise ConfigurationError("a secured broker needs its own secret (hotelhub-broker)")
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    secret = jaas_value(broker_secret)
    me = f'username="{BROKER_USER}" password="{secret}"'
    return [
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={plain} required "
        f'{me} user_{BROKER_USER}="{secret}";',
        f"listener.name.{listener.lower()}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
        f"{scram} required {me};",
        f"authorizer.class.name={AUTHORIZER}",
        f"super.users=User:{BROKER_USER}",
        "allow.everyone.if.no.acl.found=false",
    ]


def jaas_value(value: str) -> str:
    """`value` fit between JAAS double quotes; a secret that cannot be is refused, not mangled."""
    if any(c in value for c in '"\\\n\r') or not value:
        raise ConfigurationError(
            "a Kafka username or secret may not be empty nor hold quotes, backslashes or "
            "line breaks (JAAS cannot carry them); `hotelhub identity rotate` makes a fit one"
        )
    return value


def render_client_properties(username: str, secret: str, *, cafile: Path | None = None) -> str:
    """A Java client's properties (Kafka's CLI tools' `--command-config`) for one credential."""
    protocol = "SASL_SSL" if cafile is not None else "SASL_PLAINTEXT"
    lines = [
        f"security.protocol={protocol}",
        f"sasl.mechanism={SCRAM_MECHANISM}",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{jaas_value(username)}" password="{jaas_value(secret)}";',
    ]
    if cafile is not None:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={cafile}"]
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
