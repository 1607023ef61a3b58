"""`hotelhub broker`: the embedded Kafka node and Kafka's own CLI tools."""

from __future__ import annotations

import typer
from rich.console import Console

from streams.core.exceptions import HubError
from streams.ops.broker import TOOLS, BrokerStatus, EmbeddedKafka
from streams.settings import get_settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="The embedded Kafka broker (KRaft, loopback)."
)
_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

NOT_ANSWERING_EXIT = 3
"""`status` exit code when Kafka does not answer (as LSB init scripts use 3 for "not running")."""


def _kafka() -> EmbeddedKafka:
    return EmbeddedKafka(get_settings())


def _fail(exc: HubError) -> typer.Exit:
    _err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


def _describe(status: BrokerStatus) -> str:
    if status.answer is None:
        answer = "[red]not answering[/red]"
    else:
        answer = (
            f"[green]answering[/green] (cluster {status.answer.cluster_id}, "
            f"{status.answer.broker_count} broker(s))"
        )
    if not status.embedded:
        return f"external cluster {status.bootstrap_servers}: {answer}"
    pid = f"pid {status.pid}" if status.pid else "not running"
    return (
        f"embedded Kafka {status.kafka_version} at {status.bootstrap_servers}: {pid}, {answer}; "
        f"log {status.log_path}"
    )


@app.command()
def up(
    timeout_s: float = typer.Option(120.0, "--timeout-s", help="How long to wait for Kafka."),
) -> None:
    """Start the embedded broker (mvn fetches the jars on first use); wait until it answers."""
    kafka = _kafka()
    if not kafka.settings.uses_embedded_broker:
        _out.print(
            f"KAFKA_BOOTSTRAP_SERVERS is set ({kafka.settings.bootstrap_servers}): "
            "using that cluster, nothing started."
        )
        return
    try:
        status = kafka.up(timeout_s=timeout_s)
    except HubError as exc:
        raise _fail(exc) from exc
    _out.print(_describe(status))


@app.command()
def down() -> None:
    """Stop the embedded broker this hub home started."""
    kafka = _kafka()
    if not kafka.settings.uses_embedded_broker:
        _out.print(
            f"KAFKA_BOOTSTRAP_SERVERS is set ({kafka.settings.bootstrap_servers}): "
            "not ours to stop, nothing stopped."
        )
        return
    try:
        stopped = kafka.down()
    except HubError as exc:
        raise _fail(exc) from exc
    _out.print("embedded Kafka stopped." if stopped else "embedded Kafka was not running.")


@app.command()
def status() -> None:
    """Say whether Kafka answers; exit 3 when it does not."""
    state = _kafka().status()
    _out.print(_describe(state))
    if not state.answers:
        raise typer.Exit(code=NOT_ANSWERING_EXIT)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=(
        f"Run one of Kafka's CLI tools ({', '.join(TOOLS)}) with --bootstrap-server filled in. "
        "Put `--` before options this command would take itself, e.g. "
        "`hotelhub broker tool topics -- --help`."
    ),
)
def tool(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help=f"One of: {', '.join(TOOLS)}."),
) -> None:
    try:
        result = _kafka().tool(name, ctx.args)
    except HubError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code=result.returncode)
