"""The embedded Apache Kafka: one KRaft node (broker and controller) on loopback.

Why Kafka 4.3.1 by default: it is the newest release that aiokafka 0.14 and
faust-streaming 0.15.3 were seen to work with here, transactions included.
Kafka 4 dropped old protocol versions (KIP-896), so an older client stack would
break first on 4.x; if that ever happens, fall back to the last 3.x line with
`HOTELHUB_KAFKA_VERSION=3.9.1` (also KRaft-only here, same config, same tools).

Two differences the fallback brings, both handled here:

* 3.9 ships `kafka.tools.ConsoleProducer` where 4.x has
  `org.apache.kafka.tools.ConsoleProducer`; every other tool of `TOOLS` has the
  same class in both. `tool()` looks the class up in the assembled jars.
* Storage formatted by 4.x cannot be read by 3.9, so each release keeps its own
  data directory under the hub home.

The jars come from Maven Central through `mvn` (the pom is package data), once
per release, into `<home>/kafka-<version>/libs`.
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streams.core.exceptions import ConfigurationError, EmbeddedServiceError
from streams.ops.processes import Daemon
from streams.settings import HubSettings

__all__ = ["TOOLS", "BrokerStatus", "ClusterAnswer", "EmbeddedKafka", "probe_kafka"]

LOOPBACK = "127.0.0.1"
HEAP_MAX_MB = 1024
MVN_TIMEOUT_S = 900.0
FORMAT_TIMEOUT_S = 120.0

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


@dataclass(frozen=True)
class ClusterAnswer:
    """What a Kafka Metadata request returned."""

    cluster_id: str | None
    controller_id: int
    broker_count: int


@dataclass(frozen=True)
class BrokerStatus:
    bootstrap_servers: str
    embedded: bool
    pid: int | None
    answer: ClusterAnswer | None
    kafka_version: str | None
    log_path: Path | None

    @property
    def answers(self) -> bool:
        return self.answer is not None and self.answer.broker_count > 0


class EmbeddedKafka:
    """Assemble, configure, start and stop the hub's own Kafka node.

    Everything lives under `settings.home`; when `settings.kafka_bootstrap_servers`
    names an external cluster, `up`/`down` start and stop nothing and `tool` talks
    to that cluster.

        kafka = EmbeddedKafka(get_settings())
        kafka.up()                        # idempotent; waits until Kafka answers
        kafka.tool("topics", ["--list"])  # Kafka's own CLI, same jars
        kafka.down()
    """

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        home = settings.home
        self.dist_dir = home / f"kafka-{settings.kafka_version}"
        self.libs_dir = self.dist_dir / "libs"
        self.mvn_log_path = self.dist_dir / "mvn.log"
        self.config_dir = home / "broker"
        self.data_dir = self.config_dir / f"data-{settings.kafka_version}"
        self.server_properties_path = self.config_dir / "server.properties"
        self.server_log_path = home / "logs" / "kafka-server.log"
        self.daemon = Daemon(
            name="Kafka",
            pid_path=home / "run" / "kafka.pid",
            log_path=home / "logs" / "kafka.out",
        )
        self._lock_path = home / "run" / "kafka.lock"
        self._lock_depth = 0

    # -- lifecycle -------------------------------------------------------------

    def up(self, *, timeout_s: float = 120.0) -> BrokerStatus:
        """Start the node unless it runs; return once it answers a Metadata request.

        Assembles the jars with `mvn` on first use (minutes on a cold Maven cache).
        """
        if not self.settings.uses_embedded_broker:
            return self.status()
        with self._locked():
            if self.daemon.pid() is None:
                self._refuse_busy_ports()
                self.ensure_jars()
                self._write_configs()
                self._format_storage()
                self.daemon.start(
                    self._server_argv(),
                    ready=self._answers,
                    timeout_s=timeout_s,
                    cwd=self.config_dir,
                )
            else:
                self._wait_until_answers(timeout_s=timeout_s)
        return self.status()

    def down(self, *, timeout_s: float = 60.0) -> bool:
        """Stop the node this hub home started; False when none ran or the cluster is external."""
        if not self.settings.uses_embedded_broker:
            return False
        with self._locked():
            return self.daemon.stop(timeout_s=timeout_s)

    def status(self) -> BrokerStatus:
        embedded = self.settings.uses_embedded_broker
        return BrokerStatus(
            bootstrap_servers=self.settings.bootstrap_servers,
            embedded=embedded,
            pid=self.daemon.pid() if embedded else None,
            answer=probe_kafka(
                self.settings.bootstrap_servers, timeout_s=self.settings.connect_timeout_s
            ),
            kafka_version=self.settings.kafka_version if embedded else None,
            log_path=self.daemon.log_path if embedded else None,
        )

    # -- Kafka's own CLI tools ----------------------------------------------------

    def tool(
        self,
        name: str,
        args: Sequence[str] = (),
        *,
        capture: bool = False,
        timeout_s: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one of Kafka's CLI tools (see `TOOLS`) against the hub's cluster.

        `--bootstrap-server` is added unless `args` name one (or `--broker-list`).
        With `capture=False` the tool shares this terminal, so consumers stream.

            kafka.tool("consumer-groups", ["--describe", "--group", "hotelhub"])
        """
        main_class = self.tool_class(name)
        argv = list(args)
        if not any(a.split("=", 1)[0] in ("--bootstrap-server", "--broker-list") for a in argv):
            argv = ["--bootstrap-server", self.settings.bootstrap_servers, *argv]
        self.config_dir.mkdir(parents=True, exist_ok=True)
        log4j2 = self.config_dir / "tools-log4j2.properties"
        log4j2.write_text(render_tools_log4j2())
        command = [
            _java(),
            "-Xmx512m",
            f"-Dlog4j2.configurationFile={log4j2}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *argv,
        ]
        try:
            return subprocess.run(
                command, capture_output=capture, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServiceError(f"kafka tool {name} ran over {timeout_s} s") from exc

    def tool_class(self, name: str) -> str:
        """The main class of tool `name` in this release's jars."""
        if name not in TOOLS:
            raise ConfigurationError(f"unknown Kafka tool {name!r}; one of: {', '.join(TOOLS)}")
        self.ensure_jars()
        classes = _classes_in(self.libs_dir)
        for candidate in TOOLS[name]:
            if candidate in classes:
                return candidate
        raise EmbeddedServiceError(
            f"Kafka {self.settings.kafka_version} has no {name} tool (looked for "
            f"{', '.join(TOOLS[name])})"
        )

    # -- jars, config, storage ----------------------------------------------------

    def ensure_jars(self) -> Path:
        """Assemble this release's jars once with `mvn`; later calls reuse them."""
        if _has_kafka_jars(self.libs_dir):
            return self.libs_dir
        with self._locked():
            if _has_kafka_jars(self.libs_dir):
                return self.libs_dir
            mvn = shutil.which("mvn")
            if mvn is None:
                raise EmbeddedServiceError(
                    "Maven (mvn) is needed once to fetch the Kafka jars; install it, or point "
                    "KAFKA_BOOTSTRAP_SERVERS at a running cluster"
                )
            self.dist_dir.mkdir(parents=True, exist_ok=True)
            pom = self.dist_dir / "pom.xml"
            pom.write_bytes(
                resources.files("streams.ops").joinpath("resources", "kafka-pom.xml").read_bytes()
            )
            staging = self.dist_dir / "libs.partial"
            shutil.rmtree(staging, ignore_errors=True)
            command = [
                mvn, "-B", "-ntp", "-f", str(pom), "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
                f"-Dkafka.version={self.settings.kafka_version}",
            ]  # fmt: skip
            with self.mvn_log_path.open("w") as log:
                try:
                    done = subprocess.run(
                        command, stdout=log, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, timeout=MVN_TIMEOUT_S, check=False,
                    )  # fmt: skip
                except subprocess.TimeoutExpired as exc:
                    raise EmbeddedServiceError(
                        f"mvn did not assemble Kafka {self.settings.kafka_version} within "
                        f"{MVN_TIMEOUT_S:.0f} s; see {self.mvn_log_path}"
                    ) from exc
            if done.returncode != 0 or not _has_kafka_jars(staging):
                raise EmbeddedServiceError(
                    f"mvn could not assemble Kafka {self.settings.kafka_version} "
                    f"(exit {done.returncode}); see {self.mvn_log_path}"
                )
            shutil.rmtree(self.libs_dir, ignore_errors=True)
            staging.rename(self.libs_dir)
        return self.libs_dir

    def _write_configs(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.server_log_path.parent.mkdir(parents=True, exist_ok=True)
        self.server_properties_path.write_text(
            render_server_properties(self.settings, data_dir=self.data_dir)
        )
        (self.config_dir / "log4j2.properties").write_text(
            render_server_log4j2(log_path=self.server_log_path)
        )

    def _format_storage(self) -> None:
        """Format the log directory once; a formatted one keeps its cluster id."""
        if (self.data_dir / "meta.properties").exists():
            return
        command = [
            _java(), "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            "-cp", f"{self.libs_dir}/*", "kafka.tools.StorageTool", "format",
            "-t", new_cluster_id(), "-c", str(self.server_properties_path), "--ignore-formatted",
        ]  # fmt: skip
        self.daemon.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.daemon.log_path.open("ab") as log:
            try:
                done = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    timeout=FORMAT_TIMEOUT_S, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise EmbeddedServiceError(
                    f"formatting Kafka storage timed out; see {self.daemon.log_path}"
                ) from exc
        if done.returncode != 0:
            raise EmbeddedServiceError(
                f"formatting Kafka storage failed (exit {done.returncode}); "
                f"see {self.daemon.log_path}"
            )

    def _server_argv(self) -> list[str]:
        return [
            _java(),
            "-Xms256m",
            f"-Xmx{HEAP_MAX_MB}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
            "kafka.Kafka",
            str(self.server_properties_path),
        ]

    # -- readiness ----------------------------------------------------------------

    def _answers(self) -> bool:
        answer = probe_kafka(self.settings.bootstrap_servers, timeout_s=1.0)
        return answer is not None and answer.broker_count > 0

    def _wait_until_answers(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if time.monotonic() > deadline:
                raise EmbeddedServiceError(
                    f"Kafka (pid {self.daemon.pid()}) runs but did not answer within "
                    f"{timeout_s:.0f} s; see {self.daemon.log_path}"
                )
            time.sleep(0.25)

    def _refuse_busy_ports(self) -> None:
        for port in (self.settings.broker_port, self.settings.controller_port):
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((LOOPBACK, port)) == 0:
                    raise EmbeddedServiceError(
                        f"port {port} is taken by a process this hub home did not start; "
                        "set HOTELHUB_BROKER_PORT/HOTELHUB_CONTROLLER_PORT, or "
                        "KAFKA_BOOTSTRAP_SERVERS to use that cluster"
                    )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down/assembly between processes sharing one hub home (re-entrant)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(handle, fcntl.LOCK_UN)


# -- rendering (pure, unit-tested) ----------------------------------------------------


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


# -- a Kafka Metadata request over a plain socket ---------------------------------------

_METADATA_KEY = 3
_METADATA_VERSION = 8  # the newest non-flexible version; Kafka 3.x, 4.x and Redpanda serve it


def probe_kafka(bootstrap_servers: str, *, timeout_s: float) -> ClusterAnswer | None:
    """Ask the first reachable bootstrap server for cluster metadata; None if none answers.

    A listening port is not a ready broker: a KRaft broker only serves requests once
    its controller has unfenced it, so an answer here means clients will work.
    """
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            return _metadata(host.strip("[]") or LOOPBACK, int(port), timeout_s=timeout_s)
        except (OSError, ValueError, struct.error):
            continue
    return None


def _metadata(host: str, port: int, *, timeout_s: float) -> ClusterAnswer:
    client_id = b"hotelhub-probe"
    correlation_id = 1
    body = struct.pack(">iBBB", 0, 0, 0, 0)  # no topics; no auto-create; no ACL operations
    header = (
        struct.pack(">hhih", _METADATA_KEY, _METADATA_VERSION, correlation_id, len(client_id))
        + client_id
    )
    request = header + body
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        reply = _Reader(_read_exactly(sock, size))
    if reply.int32() != correlation_id:
        raise ValueError("Kafka answered another request")
    reply.int32()  # throttle_time_ms
    brokers = reply.int32()
    for _ in range(brokers):
        reply.int32()  # node_id
        reply.string()  # host
        reply.int32()  # port
        reply.string()  # rack
    cluster_id = reply.string()
    controller_id = reply.int32()
    return ClusterAnswer(cluster_id=cluster_id, controller_id=controller_id, broker_count=brokers)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    if not 0 <= size <= 16 * 1024 * 1024:
        raise ValueError(f"implausible Kafka frame size {size}")
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("Kafka closed the connection")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def int32(self) -> int:
        (value,) = struct.unpack_from(">i", self._data, self._at)
        self._at += 4
        return int(value)

    def string(self) -> str | None:
        (length,) = struct.unpack_from(">h", self._data, self._at)
        self._at += 2
        if length < 0:
            return None
        text = self._data[self._at : self._at + length].decode()
        self._at += length
        return text


# -- helpers ------------------------------------------------------------------------------


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise EmbeddedServiceError("Java 17 or newer is needed to run the embedded Kafka")
    return found


def _has_kafka_jars(libs: Path) -> bool:
    return libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))


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
