"""The embedded cluster's life: start, stop and status, under one hub-home lock."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from streams.core.exceptions import EmbeddedServiceError, HubError
from streams.ops.postgres.binaries import RunAs, find_bindir, server_major, server_user
from streams.ops.postgres.cluster import (
    CONF_NAME,
    LOOPBACK,
    Layout,
    initialize,
    layout,
    password,
    render_conf,
    server_env,
    write_owned,
)
from streams.settings import HubSettings, redacted_url

PROBE_TIMEOUT_S = 3


@dataclass(frozen=True)
class StorageStatus:
    """What `hotelhub storage status` says; never holds a password."""

    target: str
    """The redacted DATABASE_URL, or the embedded server's address."""
    external: bool
    answers: bool
    error: str | None = None
    pid: int | None = None
    port: int | None = None
    data_dir: Path | None = None
    log_path: Path | None = None
    started: bool = False
    """Set by `up` when it started the server (False: it was running already)."""

    @property
    def running(self) -> bool:
        return self.pid is not None

    def describe(self) -> str:
        answer = "answers" if self.answers else f"does not answer ({self.error})"
        if self.external:
            return f"external PostgreSQL at {self.target} (DATABASE_URL) {answer}"
        if self.pid is None:
            return (f"embedded PostgreSQL is not running (would serve {self.target}; "
                    f"data {self.data_dir})")
        return (f"embedded PostgreSQL pid {self.pid} on {LOOPBACK}:{self.port} {answer}; "
                f"data {self.data_dir}; log {self.log_path}")


class EmbeddedPostgres:
    """Debian's PostgreSQL run for one hub home, on loopback, at `settings.storage_port`.

    With DATABASE_URL set the hub does not manage the database: `up` and `down` change
    nothing and `status` only asks that server.

        storage = EmbeddedPostgres(get_settings())
        storage.up()      # idempotent; initdb and the hotelhub role on first use
        storage.down()
    """

    def __init__(self, settings: HubSettings, *, bindir: Path | None = None) -> None:
        self.settings = settings
        self._bindir = bindir

    @property
    def external(self) -> bool:
        return self.settings.database_url is not None

    @property
    def user(self) -> RunAs:
        return server_user()

    @property
    def layout(self) -> Layout:
        return layout(self.settings, self.user)

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    # -- lifecycle ---------------------------------------------------------------------

    def up(self, *, timeout_s: float = 60.0) -> StorageStatus:
        """Start the server unless it runs (initdb on first use); return once it answers."""
        if self.external:
            return self.status()
        with self._locked():
            where = self.layout
            running = self._postmaster(where)
            if running is not None:
                self._refuse_other_port(running[1])
                return self.status()
            user, bindir = self.user, self.bindir
            secret = password(where)
            self._refuse_busy_port()
            if not where.initialized:
                initialize(where, user, bindir, secret=secret, port=self.settings.storage_port)
            self._refuse_other_major(where, bindir)
            write_owned(where.data_dir / CONF_NAME, render_conf(self.settings.storage_port), user)
            self._pg_ctl(where, "start", "-w", "-t", str(int(timeout_s)), what="starting")
        state = self.status()
        if not state.answers:
            raise EmbeddedServiceError(
                f"PostgreSQL started but does not answer the hub's login ({state.error}); "
                f"see {where.log_path}"
            )
        return replace(state, started=True)

    def down(self, *, timeout_s: float = 60.0) -> bool:
        """Stop the server this hub home runs (fast: open sessions are rolled back);
        False when none ran or DATABASE_URL names another server."""
        if self.external:
            return False
        with self._locked():
            where = self.layout
            if self._postmaster(where) is None:
                return False
            self._pg_ctl(where, "stop", "-w", "-m", "fast", "-t", str(int(timeout_s)),
                         what="stopping")
            return True

    def status(self) -> StorageStatus:
        if self.external:
            dsn = self.settings.database_dsn()
            error = probe(dsn)
            return StorageStatus(redacted_url(dsn), True, error is None, error)
        where = self.layout
        running = self._postmaster(where)
        target = f"{LOOPBACK}:{self.settings.storage_port}"
        if running is None:
            return StorageStatus(target, False, False, "not running", data_dir=where.data_dir,
                                 log_path=where.log_path)
        pid, port = running
        try:
            error = probe(self.settings.database_dsn())
        except HubError as exc:
            error = str(exc)
        if error is None and port != self.settings.storage_port:
            error = f"it listens on port {port}, these settings say {self.settings.storage_port}"
        return StorageStatus(f"{LOOPBACK}:{port}", False, error is None, error, pid=pid,
                             port=port, data_dir=where.data_dir, log_path=where.log_path)

    # -- the server's files and programs ----------------------------------------------

    def _postmaster(self, where: Layout) -> tuple[int, int] | None:
        """(pid, port) of the server running on `where.data_dir`, from its postmaster.pid."""
        try:
            lines = (where.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return (pid, port) if _is_postgres(pid) else None

    def _pg_ctl(self, where: Layout, *args: str, what: str) -> None:
        """Run pg_ctl as the server's user. Its output, and the server's it starts, go to
        the log through an inherited descriptor: the server's user cannot open a file in
        root's home, and needs not."""
        argv = self.user.argv([str(self.bindir / "pg_ctl"), args[0], "-D", str(where.data_dir),
                               *args[1:]])
        where.log_path.parent.mkdir(parents=True, exist_ok=True)
        with where.log_path.open("ab") as log:
            log.write(f"--- hotelhub: {what}\n".encode())
            log.flush()
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, cwd="/", env=server_env(),
                                  check=False)
        if done.returncode != 0:
            raise EmbeddedServiceError(
                f"{what} PostgreSQL failed (pg_ctl exit {done.returncode}); see {where.log_path}"
            )

    def _refuse_other_port(self, port: int) -> None:
        if port != self.settings.storage_port:
            raise EmbeddedServiceError(
                f"the embedded PostgreSQL of this hub home runs on port {port}, these settings "
                f"say {self.settings.storage_port} (HOTELHUB_STORAGE_PORT); use the same port, "
                "or `hotelhub storage down` and `up` again"
            )

    def _refuse_busy_port(self) -> None:
        port = self.settings.storage_port
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                raise EmbeddedServiceError(
                    f"port {port} is taken by a process this hub home did not start; set "
                    "HOTELHUB_STORAGE_PORT, or DATABASE_URL to use that server"
                )

    def _refuse_other_major(self, where: Layout, bindir: Path) -> None:
        made_by = (where.data_dir / "PG_VERSION").read_text().strip()
        running = server_major(bindir)
        if made_by != str(running):
            raise EmbeddedServiceError(
                f"{where.data_dir} was made by PostgreSQL {made_by} and the programs found "
                f"are {running} ({bindir}): upgrade it with pg_upgradecluster/pg_upgrade, or "
                f"install PostgreSQL {made_by} again"
            )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down between processes sharing one hub home."""
        lock_path = self.layout.lock_path
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _is_postgres(pid: int) -> bool:
    """Whether `pid` lives and is a PostgreSQL server (a stale postmaster.pid may name a
    pid reused since by another program, which `down` must never signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()


def probe(dsn: str, *, timeout_s: int = PROBE_TIMEOUT_S) -> str | None:
    """None when `dsn` accepts a login and answers `SELECT 1`, else why not (no secret)."""
    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None
