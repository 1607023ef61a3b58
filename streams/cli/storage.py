"""`hotelhub storage`: the Event Storage's PostgreSQL (embedded, or DATABASE_URL's)."""

from __future__ import annotations

import typer
from rich.console import Console

from streams.core.exceptions import HubError
from streams.ops.postgres import EmbeddedPostgres, StorageStatus
from streams.settings import get_settings, redacted_url

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The Event Storage: PostgreSQL, embedded on loopback unless DATABASE_URL names one.",
)
_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

NOT_ANSWERING_EXIT = 3
"""`status` exit code when PostgreSQL does not answer (LSB's "not running")."""


def _storage() -> EmbeddedPostgres:
    return EmbeddedPostgres(get_settings())


def _fail(exc: HubError) -> typer.Exit:
    _err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


def _external_note(storage: EmbeddedPostgres, verb: str) -> str:
    url = redacted_url(storage.settings.database_url or "")
    return f"DATABASE_URL is set ({url}): not ours to {verb}, nothing done."


def _show(status: StorageStatus) -> None:
    _out.print(status.describe())


@app.command()
def up(
    timeout_s: float = typer.Option(60.0, "--timeout-s", help="How long to wait for it."),
) -> None:
    """Start the embedded PostgreSQL (initdb, role and database `hotelhub` on first use)."""
    storage = _storage()
    if storage.external:
        _out.print(_external_note(storage, "start"))
        return
    try:
        status = storage.up(timeout_s=timeout_s)
    except HubError as exc:
        raise _fail(exc) from exc
    if not status.started:
        _out.print("already running:")
    _show(status)
    if status.started:
        _out.print(f"password: {storage.layout.password_path} (mode 0600); "
                   "`hotelhub storage status` checks that it answers")


@app.command()
def down() -> None:
    """Stop the embedded PostgreSQL this hub home runs."""
    storage = _storage()
    if storage.external:
        _out.print(_external_note(storage, "stop"))
        return
    try:
        stopped = storage.down()
    except HubError as exc:
        raise _fail(exc) from exc
    _out.print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@app.command()
def status() -> None:
    """Say whether the Event Storage answers the hub's login; exit 3 when it does not."""
    try:
        current = _storage().status()
    except HubError as exc:
        raise _fail(exc) from exc
    _show(current)
    if not current.answers:
        raise typer.Exit(code=NOT_ANSWERING_EXIT)


__all__ = ["app"]
