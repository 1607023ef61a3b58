"""The `hotelhub` command: one sub-module per area, assembled here."""

from __future__ import annotations

import typer

from streams.cli import broker, events, registry, schemas

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Hotel event hub operations.")
app.add_typer(broker.app, name="broker")
app.add_typer(registry.app, name="registry")
app.add_typer(schemas.app, name="schemas")
events.register(app)


def main() -> None:
    app()


__all__ = ["app", "main"]
