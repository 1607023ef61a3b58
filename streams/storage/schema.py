"""The Event Storage's schema, versioned: yoyo applies `migrations/*.sql` in order, once.

yoyo records what it applied in its own tables and takes a lock while it works, so two
sinks starting together migrate once. A migration is a new file; a landed one is never
edited.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from yoyo import get_backend, read_migrations

from streams.storage.database import StorageError, first_line

MIGRATIONS = Path(__file__).parent / "migrations"


def yoyo_url(dsn: str) -> str:
    """yoyo names psycopg 3 `postgresql+psycopg`; the rest of the world says `postgresql`."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise StorageError(
            f"DATABASE_URL must be a postgresql:// URL, not {parts.scheme or 'no scheme'}://")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def _plan(dsn: str) -> tuple[object, object]:
    try:
        backend = get_backend(yoyo_url(dsn))
    except StorageError:
        raise
    except Exception as exc:  # psycopg's OperationalError, DNS, refused...
        raise StorageError(f"cannot reach the Event Storage: {first_line(exc)}") from exc
    return backend, read_migrations(str(MIGRATIONS))


def pending(dsn: str) -> list[str]:
    """Ids of the migrations not applied yet."""
    backend, migrations = _plan(dsn)
    return [m.id for m in backend.to_apply(migrations)]  # type: ignore[attr-defined]


def migrate(dsn: str) -> list[str]:
    """Apply what is pending (under yoyo's lock); returns the ids applied."""
    backend, migrations = _plan(dsn)
    with backend.lock():  # type: ignore[attr-defined]
        todo = backend.to_apply(migrations)  # type: ignore[attr-defined]
        backend.apply_migrations(todo)  # type: ignore[attr-defined]
    return [m.id for m in todo]
