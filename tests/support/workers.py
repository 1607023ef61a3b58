"""Real `hotelhub worker` processes for tests: started with their own settings, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from streams.settings import HubSettings

REPO = Path(__file__).resolve().parents[2]


WORKER_COMMAND = [
    sys.executable, "-c",
    "import logging\n"
    "logging.basicConfig(level=logging.INFO,"
    " format='%(asctime)s %(levelname)s %(name)s %(message)s')\n"
    "from streams.settings import get_settings\n"
    "from streams.worker.run import run_worker\n"
    "run_worker(get_settings(), loglevel='info')",
]
"""What `hotelhub worker` runs, without the CLI around it (so the CLI's imports don't matter),
logging Faust's INFO lines (rebalances, recovery) to the worker's log file."""


def isolated(settings: HubSettings, name: str) -> HubSettings:
    """`settings` with topics of a test's own: a sub-prefix of `settings.topic_prefix`.

    Every hub app of a pytest session reads the session's event topics, so workers started
    there would decide (and refuse) the hotels of every other test, and the in-process app
    theirs. A test that starts workers gives them, and every publisher, producer, consumer
    and topic creation of its own, these settings instead: its topics still start with the
    session's prefix, so the session deletes them at its end (tests/conftest.py), and
    `worker_app_id(isolated(...), ...)` puts the workers' own topics there too.
    """
    prefix = f"{settings.topic_prefix}{name}-{uuid.uuid4().hex[:6]}."
    own = settings.model_copy(update={"topic_prefix": prefix})
    if own.secured:
        # The broker knows nothing of these topics yet: grant them as the session's own
        # (systems their kinds, the hub its app ids under the prefix); the session's end
        # forgets every grant under its prefix, these included.
        from streams.ops.security import sync

        sync(own, deployments=[own.model_copy(update={"app_id": f"{prefix}hotelhub"})])
    return own


def worker_app_id(settings: HubSettings, name: str) -> str:
    """A consumer group of its own, under the settings' prefix so its topics are cleaned up."""
    return f"{settings.topic_prefix}hotelhub-{name}-{uuid.uuid4().hex[:8]}"


def worker_env(settings: HubSettings, *, app_id: str, web_port: int, data_dir: Path,
               ) -> dict[str, str]:
    """This process's environment without its HOTELHUB_* settings, plus the worker's own."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("HOTELHUB_")}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "SCHEMA_REGISTRY_URL": settings.registry_url,
        "HOTELHUB_APP_ID": app_id,
        "HOTELHUB_WEB_PORT": str(web_port),
        "HOTELHUB_WEB_BIND": "127.0.0.1",
        "HOTELHUB_WEB_HOST": "127.0.0.1",
        "HOTELHUB_WORKER_DATA_DIR": str(data_dir),
        "HOTELHUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "HOTELHUB_TOPIC_PREFIX": settings.topic_prefix,
        # The worker is the hub: it authenticates as hotel-hub, with the test session's secrets.
        "HOTELHUB_SECURITY": settings.security,
        "HOTELHUB_SECURITY_DIR": str(settings.security_home),
        "HOTELHUB_IDENTITY": "hotel-hub",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@dataclass
class WorkerProcess:
    """One worker subprocess; `start` again after `stop` to restart it with the same settings."""

    name: str
    env: dict[str, str]
    web_port: int
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} runs"
        self.starts += 1
        log = self.log_dir / f"{self.name}-{self.starts}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                WORKER_COMMAND,
                env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout_s: float = 30) -> int | None:
        """SIGTERM this worker's own pid, SIGKILL it after `timeout_s`; its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode

    def log_tail(self, *, lines: int = 40) -> str:
        if not self.logs:
            return f"{self.name}: no log"
        text = self.logs[-1].read_text(encoding="utf-8", errors="replace").splitlines()
        return f"--- {self.logs[-1]} ---\n" + "\n".join(text[-lines:])


@contextmanager
def stopped_at_exit(*workers: WorkerProcess) -> Iterator[tuple[WorkerProcess, ...]]:
    """Stop every worker on the way out, failed test or not."""
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_group(settings: HubSettings, name: str, log_dir: Path, *, count: int,
                 extra_env: dict[str, str] | None = None) -> list[WorkerProcess]:
    """`count` workers (`w1`, `w2`, …) of one new app on `settings`' topics, not started;
    each with its own port and data dir under `log_dir`."""
    app_id = worker_app_id(settings, name)
    workers = []
    for index in range(1, count + 1):
        worker, port = f"w{index}", free_port()
        env = worker_env(settings, app_id=app_id, web_port=port, data_dir=log_dir / worker)
        workers.append(WorkerProcess(worker, {**env, **(extra_env or {})}, port, log_dir))
    return workers
