"""Where the embedded cluster lives, and making it once (initdb, role, database).

`<storage_home>` (under the hub home) keeps the password (mode 0600) and `datadir`, the
path of the data directory. Run by an ordinary user the data is `<storage_home>/data`;
run by root it is in `/var/lib/hotelhub/postgres-<digest of the home>/data`, owned by
`postgres`: the server cannot enter a home under /root (0700), which stays as it is.

The cluster's superuser (`postgres`) gets a throwaway password at initdb and so cannot
log in at all; the hub's role `hotelhub` owns the database `hotelhub` and may create
databases (the tests' own), made in single-user mode before the server first listens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.core.exceptions import EmbeddedServiceError
from streams.core.identities import write_private
from streams.ops.postgres.binaries import RunAs
from streams.settings import HubSettings

ROLE = "hotelhub"
DATABASE = "hotelhub"
SHARED_ROOT = Path("/var/lib/hotelhub")
"""Where root's hubs keep their clusters (the `postgres` user cannot enter /root)."""
LOOPBACK = "127.0.0.1"
INITDB_TIMEOUT_S = 300.0
HBA = (
    "# Written by hotelhub: TCP on loopback only, with a SCRAM password; no unix socket.\n"
    f"host all all {LOOPBACK}/32 scram-sha-256\n"
)
CONF_NAME = "hotelhub.conf"


@dataclass(frozen=True)
class Layout:
    """The paths of one hub home's embedded cluster."""

    storage_home: Path
    data_dir: Path
    log_path: Path

    @property
    def password_path(self) -> Path:
        return self.storage_home / "password"

    @property
    def pointer_path(self) -> Path:
        return self.storage_home / "datadir"

    @property
    def lock_path(self) -> Path:
        return self.storage_home / "lock"

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()


def layout(settings: HubSettings, user: RunAs) -> Layout:
    """This home's cluster: the data directory `datadir` names, else where one would go."""
    storage_home = settings.storage_home
    try:
        data_dir = Path((storage_home / "datadir").read_text().strip())
    except FileNotFoundError:
        data_dir = _default_data_dir(settings, user)
    return Layout(storage_home, data_dir, settings.home / "logs" / "postgres.log")


def _default_data_dir(settings: HubSettings, user: RunAs) -> Path:
    if user.is_self:
        return settings.storage_home / "data"
    digest = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:12]
    return SHARED_ROOT / f"postgres-{digest}" / "data"


def password(where: Layout) -> str:
    """The hub role's password, made (mode 0600) on first use."""
    try:
        return where.password_path.read_text().strip()
    except FileNotFoundError:
        pass
    if where.initialized:
        raise EmbeddedServiceError(
            f"the cluster in {where.data_dir} exists but its password file "
            f"{where.password_path} is gone; restore it, or stop the cluster and remove "
            f"{where.data_dir} to start afresh (its events are lost)"
        )
    secret = secrets.token_urlsafe(24)
    write_private(where.password_path, secret + "\n")
    return secret


def render_conf(port: int) -> str:
    """The settings hotelhub owns, rewritten at each start (a new port takes effect)."""
    return (
        "# Written by hotelhub at each start: edit postgresql.conf for anything else.\n"
        f"listen_addresses = '{LOOPBACK}'\n"
        f"port = {port}\n"
        "unix_socket_directories = ''\n"
        "password_encryption = 'scram-sha-256'\n"
    )


def write_owned(path: Path, text: str, user: RunAs) -> None:
    """Write `text` for the server's user only (mode 0600)."""
    write_private(path, text)
    user.own(path)


def initialize(where: Layout, user: RunAs, bindir: Path, *, secret: str, port: int) -> None:
    """initdb a UTF-8 cluster, then the hub's role and database, in a staging folder that
    becomes `data_dir` only when complete (an interrupted run leaves no half cluster)."""
    parent = where.data_dir.parent
    parent.parent.mkdir(parents=True, exist_ok=True)
    parent.mkdir(mode=0o700, exist_ok=True)
    user.own(parent)
    staging = parent / f"{where.data_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    throwaway = parent / ".superuser-password"
    write_owned(throwaway, secrets.token_urlsafe(32) + "\n", user)
    try:
        _run(user.argv([
            str(bindir / "initdb"), "-D", str(staging), "--username=postgres",
            "--encoding=UTF8", "--locale=C.UTF-8", "--auth=scram-sha-256",
            f"--pwfile={throwaway}",
        ]), where, "initdb")  # fmt: skip
    finally:
        throwaway.unlink(missing_ok=True)
    write_owned(staging / "pg_hba.conf", HBA, user)
    write_owned(staging / CONF_NAME, render_conf(port), user)
    with (staging / "postgresql.conf").open("a") as conf:
        conf.write(f"\ninclude '{CONF_NAME}'\n")
    statements = (
        f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{scram_verifier(secret)}';\n"
        f"CREATE DATABASE {DATABASE} OWNER {ROLE};\n"
    )
    _run(user.argv([str(bindir / "postgres"), "--single", "-D", str(staging),
                    "-c", "exit_on_error=on", "postgres"]),
         where, "creating the hotelhub role and database", stdin=statements)
    staging.rename(where.data_dir)
    write_private(where.pointer_path, f"{where.data_dir}\n")


def scram_verifier(secret: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5803's form), so the
    password itself never reaches the server's input or its log."""
    if not (secret.isascii() and secret.isprintable()) or "'" in secret:
        raise EmbeddedServiceError("the Event Storage password must be printable ASCII "
                                   "without quotes (SASLprep is not applied)")
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored_key).decode()}:{b64(server_key).decode()}")


def _run(argv: list[str], where: Layout, what: str, *, stdin: str | None = None) -> None:
    """Run a server program with its output in the log; `/` as its folder, as the server's
    user may not enter ours."""
    where.log_path.parent.mkdir(parents=True, exist_ok=True)
    with where.log_path.open("ab") as log:
        log.write(f"--- hotelhub: {what}\n".encode())
        log.flush()
        try:
            done = subprocess.run(
                argv, input=stdin.encode() if stdin is not None else None,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, cwd="/", env=server_env(),
                timeout=INITDB_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServiceError(f"{what} timed out; see {where.log_path}") from exc
    if done.returncode != 0:
        raise EmbeddedServiceError(
            f"{what} failed (exit {done.returncode}); see {where.log_path}"
        )


def server_env() -> dict[str, str]:
    """A clean environment: no PG* variable of ours may redirect the server's programs."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
