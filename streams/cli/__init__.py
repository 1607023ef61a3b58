"""The `hotelhub` command: one sub-module per area, assembled here."""

from __future__ import annotations

import typer

from streams.cli.broker import app as broker_app
from streams.cli.deadletter import app as deadletter_app
from streams.cli.demo import demo
from streams.cli.event_store import register as register_storage_commands
from streams.cli.events import register as register_event_commands
from streams.cli.gateway import gateway
from streams.cli.history import events
from streams.cli.identity import app as identity_app
from streams.cli.registry import app as registry_app
from streams.cli.report import report
from streams.cli.schemas import app as schemas_app
from streams.cli.storage import app as storage_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Hotel event hub operations.")
app.add_typer(broker_app, name="broker")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(identity_app, name="identity")
app.add_typer(registry_app, name="registry")
app.add_typer(schemas_app, name="schemas")
app.add_typer(storage_app, name="storage")
register_storage_commands(storage_app)
register_event_commands(app)
app.command()(events)
app.command()(demo)
app.command()(report)
app.command()(gateway)


def main() -> None:
    app()


__all__ = ["app", "main"]
