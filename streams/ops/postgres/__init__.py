"""The embedded PostgreSQL of the Event Storage: Debian's server, run for one hub home.

Like the embedded Kafka it listens on loopback only (`storage_port`, 5433 by default) and
keeps its password and log under the hub home; unlike Kafka it is Debian's package, not a
download (`scripts/system-packages` installs `postgresql`). DATABASE_URL names a server
run elsewhere instead, and then nothing here starts or stops anything.

* `binaries`: finding initdb/pg_ctl, and the user they run as (not root);
* `cluster`: where the data lives, the password, initdb with the hub's role and database;
* `server`: `EmbeddedPostgres` (up, down, status) and `probe`.
"""

from __future__ import annotations

from streams.ops.postgres.binaries import PACKAGE, find_bindir
from streams.ops.postgres.cluster import DATABASE, ROLE
from streams.ops.postgres.server import EmbeddedPostgres, StorageStatus, probe

__all__ = ["DATABASE", "PACKAGE", "ROLE", "EmbeddedPostgres", "StorageStatus", "find_bindir",
           "probe"]
