"""`hotelhub schemas`: check and register the Avro contracts against the registry.

Registering is the operator's right, so both commands act as the identity `operator`
unless the environment names another (HOTELHUB_IDENTITY, HOTELHUB_CREDENTIALS_FILE,
HOTELHUB_USERNAME) or `--identity` does; credentials in SCHEMA_REGISTRY_URL win over all.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from schemas import AVRO_DIR
from streams.core.exceptions import HubError
from streams.core.kinds import CONTRACT_TOPICS
from streams.settings import HubSettings, get_settings, redacted_url
from streams.wire.contracts import ContractCheck, check_contracts, register_contracts
from streams.wire.registry_client import SchemaRegistryClient

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="The Avro contracts and the registry."
)
_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

_SCHEMA_DIR = typer.Option(AVRO_DIR, "--schema-dir", help="Directory holding <kind>.avsc files.")
_IDENTITY = typer.Option(
    None, "--identity",
    help="Act as this identity (default: operator, unless HOTELHUB_IDENTITY or explicit "
    "credentials name another).",
)
OPERATOR = "operator"


def acting_settings(identity: str | None = None) -> HubSettings:
    """The settings these commands act with: `identity`, else the one the environment
    chose, else the operator (who alone may register when security is on)."""
    settings = get_settings()
    return settings.acting_as(OPERATOR) if identity is None else settings.as_identity(identity)


def _fail(exc: HubError) -> typer.Exit:
    _err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


async def _check(settings: HubSettings, schema_dir: Path) -> list[ContractCheck]:
    async with SchemaRegistryClient.from_settings(settings) as client:
        return await check_contracts(client, schema_dir=schema_dir)


async def _register(settings: HubSettings, schema_dir: Path, kinds: list[str] | None
                    ) -> dict[str, int]:
    async with SchemaRegistryClient.from_settings(settings) as client:
        return await register_contracts(client, schema_dir=schema_dir, kinds=kinds)


@app.command()
def check(schema_dir: Path = _SCHEMA_DIR, identity: str | None = _IDENTITY) -> None:
    """Ask the registry whether every contract could be registered; exit 1 if any could not."""
    try:
        settings = acting_settings(identity)
        url = settings.registry_url
        checks = asyncio.run(_check(settings, schema_dir))
    except HubError as exc:
        raise _fail(exc) from exc
    broken = [c for c in checks if not c.is_compatible]
    for result in checks:
        if result.is_new:
            verdict = "[cyan]new[/cyan]"
        elif result.is_compatible:
            verdict = "[green]compatible[/green]"
        else:
            verdict = "[red]INCOMPATIBLE[/red]"
        _out.print(f"{result.subject} ({result.level}, {result.path.name}): {verdict}")
        for message in result.messages if not result.is_compatible else []:
            _out.print(f"    {message}")
    if broken:
        _err.print(
            f"[red]{len(broken)} contract(s) incompatible with {redacted_url(url)}:[/red] "
            + ", ".join(c.subject for c in broken)
        )
        raise typer.Exit(code=1)


@app.command()
def register(
    schema_dir: Path = _SCHEMA_DIR,
    present_only: bool = typer.Option(
        False, "--present-only",
        help="Register only the contracts with a file in --schema-dir (an older version of "
        "the contracts, replayed from git history, may lack later ones).",
    ),
    identity: str | None = _IDENTITY,
) -> None:
    """Register every contract under its subject (idempotent); print subject and schema id."""
    kinds = [name for name in CONTRACT_TOPICS
             if (schema_dir / f"{name}.avsc").exists()] if present_only else None
    try:
        ids = asyncio.run(_register(acting_settings(identity), schema_dir, kinds))
    except HubError as exc:
        raise _fail(exc) from exc
    for subject, schema_id in ids.items():
        _out.print(f"{subject}: id {schema_id}")


__all__ = ["app"]
