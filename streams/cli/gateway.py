"""`hotelhub gateway`: the Event Router on port 3400, in the foreground."""

from __future__ import annotations

import logging

import typer
import uvloop
from rich.console import Console

from streams.core.exceptions import HubError
from streams.gateway.app import serve
from streams.gateway.service import Gateway
from streams.settings import get_settings

_err = Console(stderr=True, soft_wrap=True)


def gateway(
    port: int = typer.Option(None, "--port", help="Port (default HOTELHUB_GATEWAY_PORT, 3400)."),
    bind: str = typer.Option(None, "--bind", help="Interface (default HOTELHUB_GATEWAY_BIND)."),
) -> None:
    """Run the gateway: REST publishing, WebSocket feed and webhooks (stops on SIGTERM)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings().acting_as("hotel-hub")
    try:
        uvloop.run(serve(Gateway(settings), host=bind or settings.gateway_bind,
                         port=port or settings.gateway_port))
    except HubError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from exc
