"""`hotelhub identity`: who may connect, and with which secret.

Each command changes the identity store and applies it to the broker at once
(`streams.ops.security`): a created or rotated credential works as soon as the command
returns, a revoked one stops working. Secrets are never printed; `create` and `rotate`
print the path of the file holding the new one (`username:secret`, mode 0600), for the
system that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from streams.core.exceptions import HubError
from streams.core.identities import IdentityStore, Role
from streams.core.kinds import EventKind
from streams.ops.broker.config import BROKER_USER
from streams.ops.broker.logins import ensure_broker_secret
from streams.ops.security import (
    Issued,
    SyncReport,
    create_identity,
    create_missing_defaults,
    revoke_identity,
    rotate_identity,
    sync,
)
from streams.settings import get_settings
from streams.wire.acls import rpk_script

app = typer.Typer(
    no_args_is_help=True, add_completion=False,
    help="Identities: create, rotate and revoke their secrets; the broker follows at once.",
)
_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False)

T = TypeVar("T")

NameArgument = Annotated[str, typer.Argument(
    metavar="NAME", help="The identity, e.g. hotel-pms (lower-case letters, digits, '-').")]


def _guard(action: Callable[[], T]) -> T:
    """`action`'s result; a hub error is one red line on stderr and exit code 1."""
    try:
        return action()
    except HubError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from exc


def _issued(verb: str, issued: Issued, report: SyncReport) -> None:
    _out.print(f"{verb} {issued.identity}: credential {issued.username}; its secret is in "
               f"{issued.path}")
    _out.print(f"broker: {report.summary()}")


@app.command()
def create(
    name: NameArgument,
    role: Annotated[Role, typer.Option("--role", help="What the identity is.")] = Role.SYSTEM,
    hotels: Annotated[list[str] | None, typer.Option(
        "--hotel", help="A hotel whose data it may query (repeat; default every hotel).")] = None,
    reads: Annotated[list[EventKind] | None, typer.Option(
        "--reads", help="A kind a system reads beyond those it is a target of (repeat).")
    ] = None,
) -> None:
    """Create an identity and its first secret; the broker grants what its role allows."""
    issued, report = _guard(lambda: create_identity(
        get_settings(), name, role, hotels=hotels or ["*"], reads=reads or []))
    _issued("created", issued, report)


@app.command()
def rotate(name: NameArgument) -> None:
    """Give an identity a second secret; both work until the old one is revoked."""
    issued, report = _guard(lambda: rotate_identity(get_settings(), name))
    _issued("rotated", issued, report)
    _out.print(f"move its clients to the new secret, then: hotelhub identity revoke {name} "
               "--credential <the old username>")


@app.command()
def revoke(
    name: NameArgument,
    credential: Annotated[str | None, typer.Option(
        "--credential", help="Revoke this credential (e.g. hotel-pms.1) only; "
        "without it the whole identity goes.")] = None,
) -> None:
    """Revoke one credential of an identity, or the identity; the broker refuses it at once."""
    revoked, report = _guard(lambda: revoke_identity(get_settings(), name,
                                                     credential=credential))
    what = f"{name}" if credential is None else f"credential {credential} of {name}"
    _out.print(f"revoked {what} ({', '.join(revoked) or 'it had no credential'})")
    _out.print(f"broker: {report.summary()}")


@app.command("list")
def list_identities() -> None:
    """Identities, their roles, hotels and credentials (never a secret)."""
    settings = get_settings()
    store = _guard(lambda: IdentityStore.load(settings.identities_path))
    for name in sorted(store.identities):
        identity = store.identities[name]
        _out.print(f"{name}  role={identity.role.value}  hotels={','.join(identity.hotels)}  "
                   f"publishes={','.join(sorted(identity.publishes)) or '-'}  "
                   f"reads={','.join(sorted(identity.reads)) or '-'}")
        for credential in identity.credentials:
            _out.print(f"  {credential.username}  created {credential.created_at}")
        if not identity.credentials:
            _out.print("  (no credential: `hotelhub identity rotate` gives it one)")
    _out.print(f"store: {settings.identities_path}; secrets: {settings.secrets_dir}")


@app.command("sync")
def sync_command() -> None:
    """Apply the store to the broker again: SCRAM users and ACLs (after an outage, say)."""
    report = _guard(lambda: sync(get_settings()))
    _out.print(f"broker: {report.summary()}")
    if report.missing_secrets:
        _err.print("[yellow]no secret file for[/yellow] " + ", ".join(report.missing_secrets)
                   + ": rotate those identities, then revoke the lost credentials")


@app.command("rpk")
def rpk(
    secrets_path: Annotated[str, typer.Option(
        "--secrets-path", help="Where the script finds the secret files when it runs.")
    ] = "/secrets",
) -> None:
    """Print a script that gives a Redpanda cluster the store's users and ACLs (no secrets).

    Missing default identities are created in the store first (secret files included), as
    the embedded set-up would. See docker-compose.redpanda.yml.
    """
    settings = get_settings()

    def prepared() -> IdentityStore:
        for issued in create_missing_defaults(settings):
            _err.print(f"created {issued.identity} ({issued.username}): {issued.path}")
        ensure_broker_secret(settings)
        return IdentityStore.load(settings.identities_path)

    store = _guard(prepared)
    print(rpk_script(store.identities.values(), settings, super_user=BROKER_USER,
                     secrets_path=secrets_path), end="")
