"""Background services that the hub starts itself (embedded broker, embedded registry).

Each runs detached with a pid file and a log file under the hub home, so
`up` twice finds the running one and `down` ends exactly the process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.core.exceptions import EmbeddedServiceError


@dataclass(frozen=True)
class Daemon:
    """A detached process known by its pid file."""

    name: str
    pid_path: Path
    log_path: Path

    def pid(self) -> int | None:
        """The pid of the running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid):
            return pid
        self.pid_path.unlink(missing_ok=True)
        return None

    def start(
        self,
        argv: Sequence[str],
        *,
        ready: Callable[[], bool],
        timeout_s: float,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Start `argv` detached unless already running; wait until `ready()` is true."""
        running = self.pid()
        if running is not None:
            return running
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_path.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_path.unlink(missing_ok=True)
                raise EmbeddedServiceError(
                    f"{self.name} exited with code {proc.returncode} while starting; "
                    f"see {self.log_path}"
                )
            if ready():
                return proc.pid
            time.sleep(0.25)
        self.stop()
        raise EmbeddedServiceError(
            f"{self.name} did not become ready within {timeout_s:.0f} s; see {self.log_path}"
        )

    def stop(self, *, timeout_s: float = 30.0) -> bool:
        """Stop the process this pid file names (TERM, then KILL); False if none ran."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_path.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _not_zombie(pid)
    return waited == 0


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
