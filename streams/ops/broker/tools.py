"""Kafka's own CLI tools (topics, consumers, offsets, ...) run from the assembled jars."""

from __future__ import annotations

import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

from streams.core.exceptions import ConfigurationError, EmbeddedServiceError
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
}
"""Kafka's CLI tools by their script name (without `kafka-`/`.sh`); candidates newest first."""


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
) -> subprocess.CompletedProcess[str]:
    """Run `main_class` with `args`, adding `--bootstrap-server` unless `args` name one."""
    argv = list(args)
    if not any(a.split("=", 1)[0] in ("--bootstrap-server", "--broker-list") for a in argv):
        argv = ["--bootstrap-server", bootstrap_servers, *argv]
    config_dir.mkdir(parents=True, exist_ok=True)
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
