"""Kafka's own CLI tools (topics, consumers, offsets, ...) run from the assembled jars."""

from __future__ import annotations

import os
import subprocess
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from streams.core.exceptions import ConfigurationError, EmbeddedServiceError
from streams.core.identities import write_private
from streams.ops.broker.config import render_tools_log4j2
from streams.ops.broker.jars import java

TOOLS: dict[str, tuple[str, ...]] = {
    "topics": ("org.apache.kafka.tools.TopicCommand", "kafka.admin.TopicCommand"),
    "console-consumer": (
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "kafka.tools.ConsoleConsumer",
    ),
    "console-producer": ("org.apache.kafka.tools.ConsoleProducer", "kafka.tools.ConsoleProducer"),
    "consumer-groups": (
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "kafka.admin.ConsumerGroupCommand",
    ),
    "get-offsets": ("org.apache.kafka.tools.GetOffsetShell", "kafka.tools.GetOffsetShell"),
    "transactions": ("org.apache.kafka.tools.TransactionsCommand",),
    "acls": ("org.apache.kafka.tools.AclCommand", "kafka.admin.AclCommand"),
}
"""Kafka's CLI tools by their script name (without `kafka-`/`.sh`); candidates newest first."""

_OLD_CONFIG_FLAGS = {"console-consumer": "--consumer.config",
                     "console-producer": "--producer.config"}
"""Before Kafka 4.1 the console tools named their client properties file differently."""
CONFIG_FLAGS = ("--command-config", *_OLD_CONFIG_FLAGS.values())


def config_flag(name: str, kafka_version: str) -> str:
    """The option by which tool `name` of `kafka_version` takes a client properties file."""
    major, minor, *_ = (int(part) if part.isdigit() else 0 for part in kafka_version.split("."))
    if (major, minor) < (4, 1) and name in _OLD_CONFIG_FLAGS:
        return _OLD_CONFIG_FLAGS[name]
    return "--command-config"


def check_tool(name: str) -> None:
    """Refuse a name `TOOLS` does not know."""
    if name not in TOOLS:
        raise ConfigurationError(f"unknown Kafka tool {name!r}; one of: {', '.join(TOOLS)}")


def find_tool_class(name: str, *, libs_dir: Path, kafka_version: str) -> str:
    """The first of tool `name`'s candidate classes that the jars in `libs_dir` hold."""
    classes = _classes_in(libs_dir)
    for candidate in TOOLS[name]:
        if candidate in classes:
            return candidate
    raise EmbeddedServiceError(
        f"Kafka {kafka_version} has no {name} tool (looked for {', '.join(TOOLS[name])})"
    )


def run_tool(
    name: str,
    main_class: str,
    args: Sequence[str],
    *,
    bootstrap_servers: str,
    config_dir: Path,
    libs_dir: Path,
    capture: bool,
    timeout_s: float | None,
    client_properties: str | None = None,
    username: str = "",
    kafka_version: str = "4.3.1",
) -> subprocess.CompletedProcess[str]:
    """Run `main_class` with `args`, adding `--bootstrap-server` unless `args` name one.

    `client_properties` (how `username` authenticates) go to a file of this run's own,
    mode 0600, passed with the tool's config option unless `args` bring one themselves,
    and removed when the tool ends.
    """
    argv = list(args)
    given = {a.split("=", 1)[0] for a in argv}
    if not given & {"--bootstrap-server", "--broker-list"}:
        argv = ["--bootstrap-server", bootstrap_servers, *argv]
    config_dir.mkdir(parents=True, exist_ok=True)
    secret_file: Path | None = None
    if client_properties is not None and not given & set(CONFIG_FLAGS):
        secret_file = config_dir / (f".tools-client-{username or 'anonymous'}-{os.getpid()}-"
                                    f"{time.monotonic_ns()}.properties")
        write_private(secret_file, client_properties)
        argv = [config_flag(name, kafka_version), str(secret_file), *argv]
    log4j2 = config_dir / "tools-log4j2.properties"
    log4j2.write_text(render_tools_log4j2())
    command = [
        java(),
        "-Xmx512m",
        f"-Dlog4j2.configurationFile={log4j2}",
        "-cp",
        f"{libs_dir}/*",
        main_class,
        *argv,
    ]
    try:
        return subprocess.run(
            command, capture_output=capture, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedServiceError(f"kafka tool {name} ran over {timeout_s} s") from exc
    finally:
        if secret_file is not None:
            secret_file.unlink(missing_ok=True)



def _classes_in(libs: Path) -> set[str]:
    classes: set[str] = set()
    for jar in [*libs.glob("kafka-tools-*.jar"), *libs.glob("kafka_2.13-*.jar")]:
        with zipfile.ZipFile(jar) as archive:
            classes.update(
                name.removesuffix(".class").replace("/", ".")
                for name in archive.namelist()
                if name.endswith(".class") and "$" not in name
            )
    return classes
