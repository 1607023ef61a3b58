"""`hotelhub registry`: the embedded schema registry (Confluent REST API, Avro)."""

from __future__ import annotations

import typer
from rich.console import Console

from streams.core.exceptions import HubError
from streams.registry import RegistryStatus
from streams.registry import down as stop_registry
from streams.registry import status as registry_status
from streams.registry import up as start_registry
from streams.settings import get_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The embedded schema registry (Confluent-compatible, loopback, topic `_schemas`).",
)
_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

NOT_RUNNING_EXIT = 3
"""`status` exit code when the registry does not answer (LSB's "not running")."""


def _fail(exc: HubError) -> typer.Exit:
    _err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


def _external_note(status: RegistryStatus, verb: str) -> str:
    return f"SCHEMA_REGISTRY_URL is set ({status.url}): not ours to {verb}, nothing done."


@app.command()
def up(
    timeout_s: float = typer.Option(60.0, "--timeout-s", help="How long to wait for it."),
) -> None:
    """Start the embedded registry (needs the broker); wait until it answers."""
    settings = get_settings()
    try:
        status = start_registry(settings, timeout_s=timeout_s)
    except HubError as exc:
        raise _fail(exc) from exc
    if status.external:
        _out.print(_external_note(status, "start"))
        return
    log = settings.home / "registry" / "registry.log"
    _out.print(f"{status.describe()}; log {log}")


@app.command()
def down() -> None:
    """Stop the embedded registry this hub home started."""
    settings = get_settings()
    if not settings.uses_embedded_registry:
        _out.print(_external_note(registry_status(settings), "stop"))
        return
    try:
        stopped = stop_registry(settings)
    except HubError as exc:
        raise _fail(exc) from exc
    _out.print("schema registry stopped" if stopped else "schema registry was not running")


@app.command()
def status() -> None:
    """Say whether the registry (embedded or external) answers; exit 3 when it does not."""
    current = registry_status(get_settings())
    _out.print(current.describe())
    if not current.healthy:
        raise typer.Exit(code=NOT_RUNNING_EXIT)


__all__ = ["app"]
