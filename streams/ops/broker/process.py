"""The embedded node's life: start, wait until it answers, stop, under one hub-home lock."""

from __future__ import annotations

import fcntl
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from streams.core.exceptions import EmbeddedServiceError
from streams.core.identities import AuthenticationError, write_private
from streams.ops.broker.config import (
    BROKER_USER,
    LOOPBACK,
    SCRAM_MECHANISM,
    new_cluster_id,
    render_client_properties,
    render_server_log4j2,
    render_server_properties,
)
from streams.ops.broker.jars import assemble_kafka_jars, has_kafka_jars, java
from streams.ops.broker.logins import (
    acting_credentials,
    broker_login,
    broker_secret_path,
    ensure_broker_secret,
)
from streams.ops.broker.probe import ClusterAnswer, ProbeLogin, probe_kafka
from streams.ops.broker.tools import check_tool, find_tool_class, run_tool
from streams.ops.processes import Daemon
from streams.settings import HubSettings

if TYPE_CHECKING:
    from streams.ops.security import SetUp

HEAP_MAX_MB = 1024
REFUSED_GRACE_S = 15.0
"""How long a starting node may refuse the broker's own login before `up` gives up on it."""
_SCRAM_FIELDS = re.compile(rb"(salt|storedKey|serverKey|saltedPassword)=\[[^\]]*\]")
FORMAT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class BrokerStatus:
    bootstrap_servers: str
    embedded: bool
    pid: int | None
    answer: ClusterAnswer | None
    kafka_version: str | None
    log_path: Path | None
    secured: bool = False
    error: str | None = None
    """Why the probe could not ask (a credential it lacks or the broker refused)."""
    set_up: SetUp | None = None
    """What `up` made sure of on a secured node: identities, their secrets' paths, ACLs."""

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
        # A secured node keeps its own data: a plaintext one's has no broker user to log in as.
        suffix = "-sasl" if settings.secured else ""
        self.data_dir = self.config_dir / f"data-{settings.kafka_version}{suffix}"
        self.server_properties_path = self.config_dir / "server.properties"
        self.server_log_path = home / "logs" / "kafka-server.log"
        self.daemon = Daemon(
            name="Kafka",
            pid_path=home / "run" / "kafka.pid",
            log_path=home / "logs" / "kafka.out",
        )
        self._lock_path = home / "run" / "kafka.lock"
        self._lock_depth = 0
        self._refused_since: float | None = None

    # -- lifecycle -------------------------------------------------------------

    def up(self, *, timeout_s: float = 120.0) -> BrokerStatus:
        """Start the node unless it runs; return once it answers a Metadata request.

        Assembles the jars with `mvn` on first use (minutes on a cold Maven cache). Secured,
        it then makes sure the default identities exist and the broker has every credential
        and ACL of the store (`streams.ops.security.ensure_default_identities`).
        """
        if not self.settings.uses_embedded_broker:
            return self.status()
        with self._locked():
            if self.daemon.pid() is None:
                self._refuse_busy_ports()
                self.ensure_jars()
                self._write_configs()
                self._format_storage()
                self._refused_since = None
                try:
                    self.daemon.start(
                        self._server_argv(),
                        ready=self._answers,
                        timeout_s=timeout_s,
                        cwd=self.config_dir,
                    )
                except AuthenticationError as exc:
                    self.daemon.stop()
                    raise self._refused(exc) from exc
            else:
                self._refuse_other_mode()
                self._wait_until_answers(timeout_s=timeout_s)
        if not self.settings.secured:
            return self.status()
        from streams.ops.security import ensure_default_identities

        set_up = ensure_default_identities(self.settings)
        return replace(self.status(), set_up=set_up)

    def down(self, *, timeout_s: float = 60.0) -> bool:
        """Stop the node this hub home started; False when none ran or the cluster is external."""
        if not self.settings.uses_embedded_broker:
            return False
        with self._locked():
            return self.daemon.stop(timeout_s=timeout_s)

    def status(self) -> BrokerStatus:
        embedded = self.settings.uses_embedded_broker
        answer: ClusterAnswer | None = None
        error: str | None = None
        try:
            answer = probe_kafka(self.settings.bootstrap_servers,
                                 timeout_s=self.settings.connect_timeout_s,
                                 login=self.probe_login())
        except AuthenticationError as exc:
            error = str(exc)
        running = self.running_secured() if embedded else None
        if answer is None and error is None and running not in (None, self.settings.secured):
            error = (f"it runs with HOTELHUB_SECURITY={'sasl' if running else 'none'}, "
                     f"these settings say {self.settings.security}")
        return BrokerStatus(
            bootstrap_servers=self.settings.bootstrap_servers,
            embedded=embedded,
            pid=self.daemon.pid() if embedded else None,
            answer=answer,
            kafka_version=self.settings.kafka_version if embedded else None,
            log_path=self.daemon.log_path if embedded else None,
            secured=self.settings.secured,
            error=error,
        )

    def probe_login(self) -> ProbeLogin | None:
        """The broker's own credential for its node; this process's for an external cluster."""
        if not self.settings.secured:
            return None
        if self.settings.uses_embedded_broker:
            return broker_login(self.settings)
        username, secret = acting_credentials(self.settings) or ("", "")
        return ProbeLogin(username, secret, self.settings.kafka_ssl_cafile)

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
        With `capture=False` the tool shares this terminal, so consumers stream. Secured, the
        tool authenticates as the operator (or the identity HOTELHUB_IDENTITY names) through
        a client properties file of its own (mode 0600), unless `args` pass one.

            kafka.tool("consumer-groups", ["--describe", "--group", "hotelhub"])
        """
        main_class = self.tool_class(name)
        found = acting_credentials(self.settings)
        username, secret = found or ("", "")
        return run_tool(
            name,
            main_class,
            args,
            bootstrap_servers=self.settings.bootstrap_servers,
            config_dir=self.config_dir,
            libs_dir=self.libs_dir,
            capture=capture,
            timeout_s=timeout_s,
            client_properties=render_client_properties(
                username, secret, cafile=self.settings.kafka_ssl_cafile) if found else None,
            username=username,
            kafka_version=self.settings.kafka_version,
        )

    def tool_class(self, name: str) -> str:
        """The main class of tool `name` in this release's jars."""
        check_tool(name)
        self.ensure_jars()
        return find_tool_class(
            name, libs_dir=self.libs_dir, kafka_version=self.settings.kafka_version
        )

    # -- jars, config, storage ----------------------------------------------------

    def ensure_jars(self) -> Path:
        """Assemble this release's jars once with `mvn`; later calls reuse them."""
        if has_kafka_jars(self.libs_dir):
            return self.libs_dir
        with self._locked():
            if has_kafka_jars(self.libs_dir):
                return self.libs_dir
            assemble_kafka_jars(
                dist_dir=self.dist_dir,
                libs_dir=self.libs_dir,
                mvn_log_path=self.mvn_log_path,
                kafka_version=self.settings.kafka_version,
            )
        return self.libs_dir

    def _write_configs(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.server_log_path.parent.mkdir(parents=True, exist_ok=True)
        secret = ensure_broker_secret(self.settings) if self.settings.secured else None
        write_private(
            self.server_properties_path,
            render_server_properties(self.settings, data_dir=self.data_dir, broker_secret=secret),
        )
        (self.config_dir / "log4j2.properties").write_text(
            render_server_log4j2(log_path=self.server_log_path)
        )

    def _format_storage(self) -> None:
        """Format the log directory once; a formatted one keeps its cluster id.

        Secured, the broker's own SCRAM credential goes into the new metadata log here: the
        node authenticates to itself (transaction markers, the inter-broker listener)
        before any client could create it.
        """
        if (self.data_dir / "meta.properties").exists():
            return
        command = [
            java(), "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            "-cp", f"{self.libs_dir}/*", "kafka.tools.StorageTool", "format",
            "-t", new_cluster_id(), "-c", str(self.server_properties_path), "--ignore-formatted",
        ]  # fmt: skip
        if self.settings.secured:
            secret = ensure_broker_secret(self.settings)
            command += ["--add-scram",
                        f"{SCRAM_MECHANISM}=[name={BROKER_USER},password={secret}]"]
        self.daemon.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            done = subprocess.run(
                command, capture_output=True, stdin=subprocess.DEVNULL,
                timeout=FORMAT_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServiceError(
                f"formatting Kafka storage timed out; see {self.daemon.log_path}"
            ) from exc
        with self.daemon.log_path.open("ab") as log:
            # The tool prints the broker user's SCRAM record (salt and keys): not for a log.
            log.write(_SCRAM_FIELDS.sub(rb"\1=[redacted]", done.stdout + done.stderr))
        if done.returncode != 0:
            raise EmbeddedServiceError(
                f"formatting Kafka storage failed (exit {done.returncode}); "
                f"see {self.daemon.log_path}"
            )

    def _server_argv(self) -> list[str]:
        return [
            java(),
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
        """Whether the node serves clients; a refused login counts as not yet for a while."""
        try:
            answer = probe_kafka(self.settings.bootstrap_servers, timeout_s=1.0,
                                 login=self.probe_login())
        except AuthenticationError:
            now = time.monotonic()
            self._refused_since = self._refused_since or now
            if now - self._refused_since < REFUSED_GRACE_S:
                return False
            raise
        return answer is not None and answer.broker_count > 0

    def _refused(self, exc: AuthenticationError) -> EmbeddedServiceError:
        return EmbeddedServiceError(
            f"Kafka started but refuses the broker's own login ({exc}); stopped it. Its data "
            f"({self.data_dir}) was formatted with another secret than "
            f"{self.broker_secret_path}, or a SCRAM user was deleted in it (Kafka 4.3 then "
            "loses every SCRAM user at restart; hotelhub only overwrites revoked ones). "
            "Move that folder away and `hotelhub broker up` formats a new one; "
            "`hotelhub identity sync` gives it every identity again"
        )

    @property
    def broker_secret_path(self) -> Path:
        """Where the node's own secret lives (secured mode; made on the first `up`)."""
        return broker_secret_path(self.settings)

    def _wait_until_answers(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if time.monotonic() > deadline:
                raise EmbeddedServiceError(
                    f"Kafka (pid {self.daemon.pid()}) runs but did not answer within "
                    f"{timeout_s:.0f} s; see {self.daemon.log_path}"
                )
            time.sleep(0.25)

    def running_secured(self) -> bool | None:
        """Whether the node this home runs was started secured; None when none runs."""
        if self.daemon.pid() is None:
            return None
        try:
            text = self.server_properties_path.read_text()
        except OSError:
            return None
        return "SASL_PLAINTEXT://" in text

    def _refuse_other_mode(self) -> None:
        """A node started in the other security mode would never answer these settings."""
        running = self.running_secured()
        if running is not None and running != self.settings.secured:
            started = "sasl" if running else "none"
            raise EmbeddedServiceError(
                f"the running Kafka (pid {self.daemon.pid()}) was started with "
                f"HOTELHUB_SECURITY={started}, these settings say {self.settings.security}; "
                "use the same setting, or `hotelhub broker down` and `up` again"
            )

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
