"""Debian's PostgreSQL server programs, and the user they run as.

The server refuses to run as root, and CI runs as root: there the programs run as the
`postgres` system user that Debian's package creates (`setpriv`, no PAM session, so the
program keeps the pid it was started with); anyone else runs them as themselves.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.core.exceptions import EmbeddedServiceError

PACKAGE = "postgresql"
"""Debian's package with the server programs (and the `postgres` user)."""
DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


def find_bindir(*, pg_config: str | None = "pg_config", root: Path = DEBIAN_ROOT) -> Path:
    """The folder holding `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
    `<root>/<major>/bin` (Debian keeps the server programs off PATH).

    `pg_config` may come from libpq-dev alone, naming a folder without the server, so
    every candidate must hold initdb.
    """
    candidates: list[Path] = []
    found = shutil.which(pg_config) if pg_config else None
    if found:
        done = subprocess.run([found, "--bindir"], capture_output=True, text=True,
                              timeout=10, check=False)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip()))
    candidates += sorted(root.glob("*/bin"), key=_major_of, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise EmbeddedServiceError(
        f"no PostgreSQL server programs (initdb, pg_ctl) in `pg_config --bindir` nor "
        f"{root}/*/bin: install Debian's package `{PACKAGE}` (scripts/system-packages), "
        "or set DATABASE_URL to a PostgreSQL you run yourself"
    )


def server_major(bindir: Path) -> int:
    """The major version of the programs in `bindir` (15 for 15.18)."""
    done = subprocess.run([str(bindir / "pg_ctl"), "--version"], capture_output=True,
                          text=True, timeout=10, check=False)
    match = _VERSION.search(done.stdout)
    if match is None:
        raise EmbeddedServiceError(f"cannot read the version of {bindir / 'pg_ctl'}: "
                                   f"{(done.stdout + done.stderr).strip()!r}")
    return int(match.group(1))


def _major_of(bindir: Path) -> tuple[int, ...]:
    digits = re.findall(r"\d+", bindir.parent.name)
    return tuple(int(d) for d in digits) or (-1,)


@dataclass(frozen=True)
class RunAs:
    """The user the server programs run as."""

    name: str
    uid: int
    gid: int

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def argv(self, command: list[str]) -> list[str]:
        """`command` run as this user (as is when it is us)."""
        if self.is_self:
            return command
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise EmbeddedServiceError(
                "running as root, the PostgreSQL programs must run as the `postgres` user "
                "through `setpriv` (util-linux), which is not on PATH"
            )
        return [setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                *command]

    def own(self, path: Path) -> None:
        """Give `path` to this user, so the server can read and write it."""
        if not self.is_self:
            os.chown(path, self.uid, self.gid)


def server_user() -> RunAs:
    """Who runs the server: this process's user, or `postgres` when that is root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise EmbeddedServiceError(
            f"PostgreSQL refuses to run as root and there is no `{SERVER_USER}` user to run "
            f"it as: install Debian's package `{PACKAGE}` (it creates that user), or run "
            "the hub as an ordinary user"
        ) from None
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)
