"""The embedded PostgreSQL of the Event Storage, each test with a cluster of its own (a temp
hub home, a free port): never the default home's."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from streams.core.exceptions import EmbeddedServiceError
from streams.ops.postgres import EmbeddedPostgres, find_bindir
from streams.ops.postgres.cluster import scram_verifier
from streams.settings import HubSettings
from tests.support.postgres import own_database, session_database_name, with_database

HOTELHUB = Path(sys.executable).with_name("hotelhub")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A cluster of this test's own; stopped and removed afterwards (run as root its data
    is outside tmp_path, in /var/lib/hotelhub)."""
    settings = HubSettings(home=tmp_path / "home", storage_port=_free_port(), DATABASE_URL=None)
    embedded = EmbeddedPostgres(settings)
    try:
        yield embedded
    finally:
        embedded.down()
        parent = embedded.layout.data_dir.parent
        if not parent.is_relative_to(tmp_path):
            shutil.rmtree(parent, ignore_errors=True)


def _listening(port: int) -> set[str]:
    """Addresses the kernel has listening TCP sockets on at `port` (IPv4 and IPv6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word in host order (little-endian here).
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
                found.add(socket.inet_ntop(family, words))
    return found


def _cli(storage: EmbeddedPostgres, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "HOTELHUB_DATABASE_URL")}
    env |= {"HOTELHUB_HOME": str(storage.settings.home),
            "HOTELHUB_STORAGE_PORT": str(storage.settings.storage_port)}
    return subprocess.run([str(HOTELHUB), "storage", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_lifecycle_loopback_scram_idempotent(storage: EmbeddedPostgres):
    settings = storage.settings
    assert not storage.status().running

    first = storage.up()
    assert first.started and first.running and first.answers, first.describe()
    assert first.port == settings.storage_port
    password = storage.layout.password_path
    assert stat.S_IMODE(password.stat().st_mode) == 0o600

    with psycopg.connect(settings.database_dsn()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        role = conn.execute("SELECT current_user, rolsuper, rolcreatedb, current_database(), "
                            "pg_encoding_to_char(encoding) FROM pg_roles, pg_database "
                            "WHERE rolname = current_user AND datname = current_database()"
                            ).fetchone()
    assert role == ("hotelhub", False, True, "hotelhub", "UTF8")

    wrong = settings.database_dsn().replace(password.read_text().strip(), "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)
    superuser = with_database(settings.database_dsn(), "postgres").replace(
        "//hotelhub:", "//postgres:")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(superuser, connect_timeout=5)

    assert _listening(settings.storage_port) == {"127.0.0.1"}
    assert f".s.PGSQL.{settings.storage_port}" not in Path("/proc/net/unix").read_text()

    again = storage.up()
    assert not again.started and again.pid == first.pid
    status = _cli(storage, "status")
    assert status.returncode == 0 and f"pid {first.pid}" in status.stdout, status
    assert "already running" in _cli(storage, "up").stdout

    assert storage.down() is True
    state = storage.status()
    assert not state.running and not state.answers
    assert _cli(storage, "status").returncode == 3
    assert storage.down() is False
    assert "was not running" in _cli(storage, "down").stdout

    # The data keeps its role: a restart logs in with the same password file.
    assert storage.up().answers
    storage.down()
    password.unlink()
    with pytest.raises(EmbeddedServiceError, match=r"password file .* is gone"):
        storage.up()


def test_port_taken_by_another_program(storage: EmbeddedPostgres):
    with socket.socket() as other:
        other.bind(("127.0.0.1", storage.settings.storage_port))
        other.listen()
        with pytest.raises(EmbeddedServiceError, match=r"port .* is taken"):
            storage.up()


def test_external_database_is_left_alone(tmp_path: Path):
    url = f"postgresql://someone:secret@127.0.0.1:{_free_port()}/elsewhere"
    external = EmbeddedPostgres(HubSettings(home=tmp_path, DATABASE_URL=url))
    assert external.down() is False
    state = external.status()
    assert state.external and not state.answers
    assert "secret" not in state.describe() and "***@127.0.0.1" in state.describe()
    assert not (tmp_path / "postgres").exists()


def test_missing_server_programs_name_the_package(tmp_path: Path):
    # A pg_config of libpq-dev alone names a folder without the server programs.
    lonely = tmp_path / "pg_config"
    lonely.write_text(f"#!/bin/sh\necho {tmp_path / 'client-only'}\n")
    lonely.chmod(0o755)
    for pg_config in (None, str(lonely)):
        with pytest.raises(EmbeddedServiceError, match="install Debian's package `postgresql`"):
            find_bindir(pg_config=pg_config, root=tmp_path / "lib")


def test_newest_debian_server_programs(tmp_path: Path):
    for major in ("9.6", "13", "15"):
        bindir = tmp_path / major / "bin"
        bindir.mkdir(parents=True)
        for program in ("initdb", "pg_ctl"):
            (bindir / program).touch()
    (tmp_path / "17" / "bin").mkdir(parents=True)  # client programs only
    assert find_bindir(pg_config=None, root=tmp_path) == tmp_path / "15" / "bin"


def test_scram_verifier_refuses_quotes():
    assert scram_verifier("abc", salt=b"0" * 16).startswith("SCRAM-SHA-256$4096:")
    with pytest.raises(EmbeddedServiceError, match="printable ASCII"):
        scram_verifier("it's")


def test_session_databases_do_not_see_each_other(storage: EmbeddedPostgres):
    storage.up()
    server = storage.settings.database_dsn()
    first_name, second_name = (session_database_name(f"test-{n}.") for n in ("aa11", "bb22"))
    assert first_name == "hotelhub_test_aa11"
    with own_database(server, first_name) as first, own_database(server, second_name) as second:
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE seen (n int)")
            conn.execute("INSERT INTO seen VALUES (1)")
        leaked = psycopg.connect(first)  # a connection a test forgot: the drop forces it out
        with psycopg.connect(second) as conn:
            hidden = conn.execute("SELECT to_regclass('seen')").fetchone()
        assert hidden == (None,)
    with psycopg.connect(server) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'hotelhub_test_%'"
                            ).fetchall()
    assert left == []
    leaked.close()
