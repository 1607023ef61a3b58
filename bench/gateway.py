"""Gateway: publish -> WebSocket and publish -> webhook latency, p50/p99/max, at paced rates.

Issue 10 asks for p99 < 20 ms from publish to WebSocket at 1,000 events/s. Each run has three
processes, so no side's event loop delays another's stamps:

* a real `hotelhub gateway` process (`tests.support.gateway.GatewayProcess`) on topics of its
  own;
* the receivers' process (`bench.gateway_receivers`, started here with `sys.executable -m`,
  ended by its pid): a WebSocket client (`hotel-member`, patterns `room.*`) stamping each
  CloudEvent `id` on arrival, and beside it, reading the same records, the floor: a bare
  aiokafka consumer (read_committed, no group, positioned at the end before anything is
  published, fetch settings of the gateway's feed) decoding each with the codec and
  serialising `event.model_dump(mode="json")` to JSON, what the gateway does per record minus
  the WebSocket hop. Then, for the webhook rate, a receiver that verifies every Standard
  Webhooks signature (`standardwebhooks`) for an endpoint `hotel-member` registers
  (`POST /webhooks`), stamping each `webhook-id` (the event id);
* this one: `HotelEventPublisher` (`hotel-pms`, one room event per distinct room) publishing
  straight to Kafka, paced as `bench.latency` paces (`publish_many` of what is due every
  5 ms); each event_id is stamped when handed over, and again when its tick's `publish_many`
  returned (the publish-ack reference row).

Every stamp is `time.time()` (one host clock), latency = arrival - hand-over, for every
`--rates` value for `--seconds`, then at `--webhook-rate` after both WebSocket sides closed.
The receivers send their stamps back when told to finish (JSON lines on their stdout). Every
published event must arrive exactly once on each side, or the run is unfair (exit 1). A
warm-up batch (not timed) goes first on each channel. CPU/wall of the gateway, of this
process and of the receivers' while publishing. Run with `python -m bench.gateway`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    REPO_ROOT,
    Deadline,
    Stamp,
    base_parser,
    drop_run_topics,
    environment,
    grant_run,
    main_loop,
    records_in,
    report,
    run_settings,
)
from bench.gateway_receivers import LINE_LIMIT, Arrivals
from streams.core.kinds import WEBHOOK_DEADLETTER_TOPIC, EventKind, System
from streams.runners.publisher import HotelEventPublisher, PublishOutcome
from streams.wire.registry_client import SchemaRegistryClient

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.events import sample
from tests.support.gateway import GatewayProcess, free_port, gateway_settings

TICK_S = 0.005
WARM_UP = 50
"""Events per channel before the clock: first connections and writer-schema look-ups."""
DRAIN_S = 30.0
"""How long the last events of a rate may take to arrive before they count as missing."""
QUIET_S = 1.0
"""Listening on after the last rate, for copies that come late."""
ANSWER_S = 60.0
"""How long the receivers' process may take to answer a command (beyond a wait's own time);
its first answer includes its start-up."""
WS_DOES = ("`hotelhub gateway` process: its feed (aiokafka, read_committed) -> header routing "
           "-> codec decode -> CloudEvents JSON -> WebSocket `/ws` -> client in the receivers' "
           "process (`hotel-member`, room.*)")
FLOOR_DOES = ("aiokafka consumer in the receivers' process, beside the WebSocket client "
              "(read_committed, no group, the feed's fetch settings) -> codec decode -> "
              "`json.dumps(event.model_dump(mode='json'))`; no WebSocket hop")
ACK_DOES = ("reference, not a side, in the publisher's process: hand-over -> the tick's "
            "`publish_many` returned (acks=all, linger_ms=2): what producing costs here; a "
            "consumer may see a record before its ack")
HOOK_DOES = ("`hotelhub gateway` webhook dispatcher (consumer group, lanes) -> signed POST -> "
             "receiver in the receivers' process (verifies with `standardwebhooks`, answers "
             "204)")
CPU_OF = ("gateway", "publisher", "receivers")


def room_documents(count: int, tag: str) -> list[dict[str, Any]]:
    """`count` room events, each for a room of its own and with its event_id set, so the
    hand-over can be stamped by the id the CloudEvent carries."""
    return [{**sample(EventKind.ROOM, f"GW-{tag}-{index:06d}")[1], "event_id": str(uuid.uuid4())}
            for index in range(count)]


async def paced(pub: HotelEventPublisher, docs: list[dict[str, Any]], rate: float,
                sent_at: dict[str, float], acked: Arrivals | None = None
                ) -> list[PublishOutcome]:
    """Publish `docs` at `rate` events/s: every tick what is due, without waiting for the
    acks of earlier ticks (as `bench.latency`); each id stamped (`time.time()`, the receivers'
    clock) at hand-over, and in `acked` when its tick's `publish_many` returned (all of the
    tick acknowledged)."""

    def stamp_acks(task: asyncio.Task[list[PublishOutcome]]) -> None:
        if acked is not None and not task.cancelled() and task.exception() is None:
            at = time.time()
            for outcome in task.result():
                if outcome.ok and outcome.event is not None:
                    acked.saw(str(outcome.event.event_id), at)

    started = time.perf_counter()
    sent = 0
    pending: list[asyncio.Task[list[PublishOutcome]]] = []
    while sent < len(docs):
        due = min(len(docs), int((time.perf_counter() - started) * rate) + 1) - sent
        if due > 0:
            batch = docs[sent:sent + due]
            now = time.time()
            for document in batch:
                sent_at[document["event_id"]] = now
            pending.append(asyncio.create_task(pub.publish_many(batch)))
            pending[-1].add_done_callback(stamp_acks)
            sent += due
        await asyncio.sleep(TICK_S)
    return [outcome for done in await asyncio.gather(*pending) for outcome in done]


class ReceiverProcess:
    """`bench.gateway_receivers` as a child process: one JSON command a line on its stdin, one
    answer a line on its stdout, its stderr into `log`."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    @classmethod
    async def start(cls, gateway_url: str, log: Path, deadline: Deadline) -> ReceiverProcess:
        """Started with this run's settings (`run_settings` put them in the environment)."""
        with log.open("ab") as errors:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.gateway_receivers", "--gateway-url", gateway_url,
                "--timeout-s", f"{deadline.remaining_s():.0f}", cwd=REPO_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=errors, limit=LINE_LIMIT)
        return cls(process, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return ""

    async def ask(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send `command`; its answer within `timeout_s` (an error answer raises)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        async with asyncio.timeout(timeout_s):
            await self.process.stdin.drain()
            line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the receivers' process ended ({self.process.returncode}) on "
                               f"{command['do']}: {self._log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the receivers' process: {answer['error']}\n{self._log_tail()}")
        return answer

    async def stop(self) -> None:
        """Asked to exit; terminated by its pid if it has not within 10 s; killed after 10 more."""
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                await self.ask({"do": "exit"}, 10)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)
        for end in (self.process.terminate, self.process.kill):
            if self.process.returncode is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                end()  # os.kill(self.process.pid, ...)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def figures(ids: Sequence[str], sent_at: dict[str, float], side: dict[str, Any]
            ) -> dict[str, Any]:
    """Latency of `ids` on one side (`Arrivals.dump()`: first arrival and extra copies by id)."""
    at, copies = side["at"], side["duplicates"]
    latencies = [(at[i] - sent_at[i]) * 1000 for i in ids if i in at]
    return {
        "events": len(ids), "missing": len(ids) - len(latencies),
        "duplicates": sum(copies.get(i, 0) for i in ids),
        "p50_ms": round(percentile(latencies, 0.50), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """CPU/wall of the gateway, this process and the receivers' over one publishing window."""

    def __init__(self, gateway_pid: int, receivers_pid: int) -> None:
        self.pids = {"gateway": gateway_pid, "receivers": receivers_pid}
        self.before = {who: cpu_s(pid) for who, pid in self.pids.items()}
        self.here = Stamp.now()

    def figures(self) -> dict[str, float]:
        now = Stamp.now()
        wall = now.wall_s - self.here.wall_s
        used = {who: cpu_s(pid) - self.before[who] for who, pid in self.pids.items()}
        used["publisher"] = now.cpu_s - self.here.cpu_s
        return {f"{who} CPU/wall while publishing": round(used[who] / wall, 2) for who in CPU_OF}


async def drain(receivers: ReceiverProcess, deadline: Deadline) -> dict[str, Any]:
    """Until every expected id reached every open side of the receivers, or `DRAIN_S`."""
    wait_s = min(DRAIN_S, deadline.remaining_s())
    return await receivers.ask({"do": "wait", "timeout_s": wait_s},
                               min(wait_s + ANSWER_S, deadline.remaining_s()))


async def websocket_rates(number: int, options: argparse.Namespace, gateway: GatewayProcess,
                          receivers: ReceiverProcess, pub: HotelEventPublisher,
                          deadline: Deadline) -> dict[str, Any]:
    """Both sides subscribed (in the receivers' process) before anything is published; then
    each rate in turn; their stamps come back when both close."""
    assert gateway.process is not None

    def answer_s() -> float:
        return min(ANSWER_S, deadline.remaining_s())

    await receivers.ask({"do": "subscribe"}, answer_s())
    sent_at: dict[str, float] = {}
    ids_of: dict[str, list[str]] = {}
    measured: dict[str, dict[str, Any]] = {}
    warm = room_documents(WARM_UP, f"{number}-warm")
    ids_of["warm-up"] = [doc["event_id"] for doc in warm]
    await receivers.ask({"do": "expect", "ids": ids_of["warm-up"]}, answer_s())
    await paced(pub, warm, WARM_UP / 0.5, sent_at)
    await drain(receivers, deadline)
    for rate in options.rates:
        docs = room_documents(int(rate * options.seconds), f"{number}-{rate:g}")
        ids = ids_of[f"{rate:g}"] = [doc["event_id"] for doc in docs]
        await receivers.ask({"do": "expect", "ids": ids}, answer_s())
        acked = Arrivals()
        window = CpuWindow(gateway.process.pid, receivers.pid)
        outcomes = await paced(pub, docs, rate, sent_at, acked=acked)
        measured[f"{rate:g}"] = {"not published": sum(not outcome.ok for outcome in outcomes),
                                 **window.figures(),
                                 "publish ack": figures(ids, sent_at, acked.dump())}
        await drain(receivers, deadline)
    await asyncio.sleep(QUIET_S)  # a late copy would still be counted
    stamps = await receivers.ask({"do": "unsubscribe"}, answer_s())
    ws, floor = stamps["sides"]["websocket"], stamps["sides"]["floor"]
    results: dict[str, Any] = {"warm-up": {
        "websocket": figures(ids_of["warm-up"], sent_at, ws),
        "floor": figures(ids_of["warm-up"], sent_at, floor)}}
    for key, figure in measured.items():
        ack = figure.pop("publish ack")
        results[key] = {**figure, "websocket": figures(ids_of[key], sent_at, ws),
                        "floor": figures(ids_of[key], sent_at, floor), "publish ack": ack}
    results["websocket controls"] = stamps["controls"]
    results["duplicates in the run"] = {"websocket": sum(ws["duplicates"].values()),
                                        "floor": sum(floor["duplicates"].values())}
    return results


async def webhook_rate(number: int, options: argparse.Namespace, gateway: GatewayProcess,
                       receivers: ReceiverProcess, pub: HotelEventPublisher,
                       deadline: Deadline) -> dict[str, Any]:
    """One endpoint of `hotel-member` on the receivers' webhook receiver; a warm-up, then the
    timed rate; the receiver's stamps come back when it stops."""
    assert gateway.process is not None

    def answer_s() -> float:
        return min(ANSWER_S, deadline.remaining_s())

    await receivers.ask({"do": "hook"}, answer_s())
    sent_at: dict[str, float] = {}
    warm = room_documents(WARM_UP, f"{number}-hook-warm")
    warm_ids = [doc["event_id"] for doc in warm]
    await receivers.ask({"do": "expect", "ids": warm_ids}, answer_s())
    await paced(pub, warm, WARM_UP / 0.5, sent_at)
    await drain(receivers, deadline)
    rate = options.webhook_rate
    docs = room_documents(int(rate * options.seconds), f"{number}-hook")
    ids = [doc["event_id"] for doc in docs]
    await receivers.ask({"do": "expect", "ids": ids}, answer_s())
    window = CpuWindow(gateway.process.pid, receivers.pid)
    outcomes = await paced(pub, docs, rate, sent_at)
    cpu = window.figures()
    await drain(receivers, deadline)
    stamps = await receivers.ask({"do": "unhook"}, answer_s())
    hook = stamps["sides"]["webhook"]
    return {"warm-up": figures(warm_ids, sent_at, hook), f"{rate:g}": {
        "not published": sum(not outcome.ok for outcome in outcomes), **cpu,
        "webhook": figures(ids, sent_at, hook),
        "bad signatures": len(stamps["bad signatures"]),
        "receiver calls": stamps["receiver calls"]}}


async def one_run(number: int, options: argparse.Namespace, data_dir: Path,
                  deadline: Deadline) -> dict[str, Any]:
    settings = run_settings("gateway", number, data_dir)
    gateway_own = gateway_settings(settings)
    # The gateway's app id (`<prefix>hotelhub`, its webhook group and transactional ids) too.
    await asyncio.to_thread(grant_run, settings, gateway_own)
    gateway = GatewayProcess(gateway_own, free_port(), data_dir / f"gateway-{number}.log")
    receivers: ReceiverProcess | None = None
    results: dict[str, Any] = {}
    try:
        await asyncio.to_thread(gateway.start, timeout_s=min(60.0, deadline.remaining_s()))
        receivers = await ReceiverProcess.start(
            gateway.url, data_dir / f"receivers-{number}.log", deadline)
        async with (asyncio.timeout(deadline.remaining_s()),
                    SchemaRegistryClient.from_settings(settings) as registry,
                    HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                                        settings=settings) as pub):
            results.update(await websocket_rates(number, options, gateway, receivers, pub,
                                                 deadline))
            results["webhook"] = await webhook_rate(number, options, gateway, receivers, pub,
                                                    deadline)
        results["webhook dead letters"] = await records_in(
            settings, [settings.topic(WEBHOOK_DEADLETTER_TOPIC)])
        return results
    finally:
        if receivers is not None:
            await receivers.stop()
        await asyncio.to_thread(gateway.stop)
        await drop_run_topics(settings)


def unfair(result: dict[str, Any], options: argparse.Namespace) -> list[str]:
    """What makes a run's figures unfair: anything lost, doubled, refused or badly signed."""
    problems = []
    for rate in options.rates:
        figure = result[f"{rate:g}"]
        if figure["not published"]:
            problems.append(f"{rate:g}/s: {figure['not published']} not published")
        for side in ("websocket", "floor"):
            if figure[side]["missing"] or figure[side]["duplicates"]:
                problems.append(f"{rate:g}/s {side}: {figure[side]['missing']} missing, "
                                f"{figure[side]['duplicates']} duplicates")
    if any(result["duplicates in the run"].values()):
        problems.append(f"duplicates in the run: {result['duplicates in the run']}")
    if result["websocket controls"]:
        problems.append(f"WebSocket controls: {result['websocket controls']}")
    hook = result["webhook"][f"{options.webhook_rate:g}"]
    if hook["not published"] or hook["bad signatures"]:
        problems.append(f"webhook: {hook['not published']} not published, "
                        f"{hook['bad signatures']} bad signatures")
    if hook["webhook"]["missing"] or hook["webhook"]["duplicates"]:
        problems.append(f"webhook: {hook['webhook']['missing']} missing, "
                        f"{hook['webhook']['duplicates']} duplicates")
    if result["webhook dead letters"]:
        problems.append(f"{result['webhook dead letters']} webhook dead letters")
    return problems


def row(side: str, does: str, rate: float, per_run: list[dict[str, Any]], key: str) -> str:
    """One line of the table: medians over the runs, each run's p99, the worst max."""
    found = [figure[key] for figure in per_run]

    def median(values: Sequence[float | None]) -> str:
        present = [value for value in values if value is not None]
        return f"{statistics.median(present):.1f}" if present else "-"

    p99s = " / ".join(f"{f['p99_ms']:.1f}" if f["p99_ms"] is not None else "-" for f in found)
    worst = max((f["max_ms"] or 0.0) for f in found)
    cpu = [statistics.median(r[f"{who} CPU/wall while publishing"] for r in per_run)
           for who in CPU_OF]
    return (f"| {side} | {does} | {rate:g} | {median([f['p50_ms'] for f in found])} | "
            f"{median([f['p99_ms'] for f in found])} | {p99s} | {worst:.1f} | "
            f"{' / '.join(f'{c:.2f}' for c in cpu)} | {sum(f['missing'] for f in found)} / "
            f"{sum(f['duplicates'] for f in found)} |")


def table(runs: list[dict[str, Any]], options: argparse.Namespace) -> str:
    lines = ["| side | does | events/s | p50 ms (median) | p99 ms (median) | p99 per run "
             "| max ms | CPU/wall gateway / publisher / receivers | missing / duplicates |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for side, does in (("websocket", WS_DOES), ("floor", FLOOR_DOES), ("publish ack", ACK_DOES)):
        for index, rate in enumerate(options.rates):
            lines.append(row(side, does if index == 0 else "as above", rate,
                             [result[f"{rate:g}"] for result in runs], side))
    rate = options.webhook_rate
    lines.append(row("webhook", HOOK_DOES, rate,
                     [result["webhook"][f"{rate:g}"] for result in runs], "webhook"))
    return "\n".join(lines)


async def run(options: argparse.Namespace) -> None:
    deadline = Deadline(options.timeout_s)
    runs = []
    with tempfile.TemporaryDirectory(prefix="hotelhub-bench-gateway-") as data_dir:
        for number in range(options.runs):
            runs.append(await one_run(number, options, Path(data_dir), deadline))
            print(f"run {number + 1}: {json.dumps(runs[-1], default=str)}", flush=True)
    from streams.settings import get_settings

    env = environment(get_settings(), options)
    report("gateway", table(runs, options), env,
           {"runs": runs, "target": "WebSocket p99 < 20 ms at 1,000 events/s (issue 10)"},
           options.output)
    problems = [f"run {n + 1}: {p}" for n, result in enumerate(runs)
                for p in unfair(result, options)]
    if problems:
        raise SystemExit("unfair run: " + "; ".join(problems))


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__, events=2, timeout_s=900)
    parser.add_argument("--rates", type=lambda text: [float(r) for r in text.split(",")],
                        default=[200.0, 1000.0, 2000.0], help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds at each rate")
    parser.add_argument("--webhook-rate", type=float, default=500.0,
                        help="events/s for the webhook latency")
    options = parser.parse_args(argv)
    del options.events  # the rates and durations decide the counts
    if options.runs < 1 or options.seconds <= 0 or min(options.rates) <= 0 \
            or options.webhook_rate <= 0:
        parser.error("--runs >= 1; --seconds, --rates and --webhook-rate > 0")
    main_loop(lambda: run(options), timeout_s=options.timeout_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
