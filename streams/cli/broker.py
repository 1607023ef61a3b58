"""`hotelhub broker`: the embedded Kafka node and Kafka's own CLI tools."""

from __future__ import annotations

import typer
from rich.console import Console

from streams.core.exceptions import HubError
from streams.ops.broker import TOOLS, BrokerStatus, EmbeddedKafka
from streams.ops.security import SetUp
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
    if status.error:
        answer = f"[red]cannot be used[/red]: {status.error}"
    pid = f"pid {status.pid}" if status.pid else "not running"
    security = "SASL/SCRAM + ACLs" if status.secured else "[yellow]plaintext, no ACLs[/yellow]"
    return (
        f"embedded Kafka {status.kafka_version} at {status.bootstrap_servers} ({security}): "
        f"{pid}, {answer}; log {status.log_path}"
    )


def _describe_set_up(set_up: SetUp) -> list[str]:
    """Where the identities and their secrets are: paths only, never a secret."""
    lines = [f"identities: {set_up.identities_path}",
             f"secrets: {set_up.secrets_dir} (one 'username:secret' file per identity, "
             "mode 0600; `hotelhub identity list` shows who exists)"]
    lines += [f"  created {c.identity} ({c.username}): {c.path}" for c in set_up.created]
    if set_up.report.missing_secrets:
        lines.append(
            "[yellow]no secret file for[/yellow] " + ", ".join(set_up.report.missing_secrets)
            + ": the broker cannot get those credentials; `hotelhub identity rotate` the "
            "identity, then revoke the lost one")
    return lines


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
    if status.set_up is not None:
        for line in _describe_set_up(status.set_up):
            _out.print(line)
    elif not kafka.settings.secured:
        _out.print("[yellow]HOTELHUB_SECURITY=none: any local process may read and write every "
                   "topic; for development only[/yellow]")


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
