"""Gateway: publish -> WebSocket and publish -> webhook latency, p50/p99/max, at paced rates.

Issue 10 asks for p99 < 20 ms from publish to WebSocket at 1,000 events/s. Each run starts a
real `hotelhub gateway` process (`tests.support.gateway.GatewayProcess`: its own event loop,
so this process's clients never share it) on topics of its own, and in this process:

* a WebSocket client (`hotel-member`, patterns `room.*`) stamps each CloudEvent `id` on
  arrival;
* the floor, reading the same records: a bare aiokafka consumer (read_committed, no group,
  positioned at the end before anything is published, fetch settings of the gateway's feed)
  decoding each with the codec and serialising `event.model_dump(mode="json")` to JSON, what
  the gateway does per record minus the WebSocket hop;
* `HotelEventPublisher` (`hotel-pms`, one room event per distinct room) publishing straight to
  Kafka, paced as `bench.latency` paces (`publish_many` of what is due every 5 ms); each
  event_id is stamped when handed over.

Latency = arrival - hand-over, for every `--rates` value for `--seconds`. Then both clients
close, `hotel-member` registers a webhook endpoint (`POST /webhooks`) on a receiver here that
verifies every Standard Webhooks signature, and events are published at `--webhook-rate`;
latency per `webhook-id` (the event id) = received - hand-over. Every published event must
arrive exactly once on each side, or the run is unfair (exit 1). A warm-up batch (not timed)
goes first on each channel. Run with `python -m bench.gateway`.
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

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import (
    REPO_ROOT,
    Deadline,
    Rate,
    Stamp,
    base_parser,
    cancel_quietly,
    drop_run_topics,
    environment,
    grant_run,
    main_loop,
    records_in,
    report,
    run_settings,
)
from streams.core.kinds import POLICIES, REFUSAL_TOPIC, WEBHOOK_DEADLETTER_TOPIC, EventKind, System
from streams.gateway.feed import FEED_FETCH
from streams.runners.publisher import HotelEventPublisher, PublishOutcome
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.events import sample
from tests.support.gateway import (
    GatewayProcess,
    Receiver,
    Subscription,
    free_port,
    gateway_settings,
    receiver,
)

TICK_S = 0.005
WARM_UP = 50
"""Events per channel before the clock: first connections and writer-schema look-ups."""
DRAIN_S = 30.0
"""How long the last events of a rate may take to arrive before they count as missing."""
QUIET_S = 1.0
"""Listening on after the last rate, for copies that come late."""
MEMBER = System.HOTEL_MEMBER.value
PATTERNS = ["room.*"]
WS_DOES = ("`hotelhub gateway` process: its feed (aiokafka, read_committed) -> header routing "
           "-> codec decode -> CloudEvents JSON -> WebSocket `/ws` (`hotel-member`, room.*)")
FLOOR_DOES = ("aiokafka consumer here (read_committed, no group, the feed's fetch settings) -> "
              "codec decode -> `json.dumps(event.model_dump(mode='json'))`; no WebSocket hop")
ACK_DOES = ("reference, not a side: hand-over -> the tick's `publish_many` returned (acks=all, "
            "linger_ms=2): what producing costs here; a consumer may see a record before its ack")
HOOK_DOES = ("`hotelhub gateway` webhook dispatcher (consumer group, lanes) -> signed POST -> "
             "receiver here (verifies with `standardwebhooks`, answers 204)")


class Arrivals:
    """First arrival time of each event id, duplicates counted; waits in O(1) per arrival."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.duplicates = 0
        self.controls: list[dict[str, Any]] = []
        self._missing: set[str] = set()
        self._all_in = asyncio.Event()

    def saw(self, event_id: str, at: float) -> None:
        if event_id in self.at:
            self.duplicates += 1
            return
        self.at[event_id] = at
        self._missing.discard(event_id)
        if not self._missing:
            self._all_in.set()

    async def wait_for(self, ids: Sequence[str], timeout_s: float) -> None:
        self._missing = {event_id for event_id in ids if event_id not in self.at}
        self._all_in.clear()
        if self._missing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._all_in.wait()


def room_documents(count: int, tag: str) -> list[dict[str, Any]]:
    """`count` room events, each for a room of its own and with its event_id set, so the
    hand-over can be stamped by the id the CloudEvent carries."""
    return [{**sample(EventKind.ROOM, f"GW-{tag}-{index:06d}")[1], "event_id": str(uuid.uuid4())}
            for index in range(count)]


async def paced(pub: HotelEventPublisher, docs: list[dict[str, Any]], rate: float,
                sent_at: dict[str, float], clock: Any = time.perf_counter,
                acked: Arrivals | None = None) -> list[PublishOutcome]:
    """Publish `docs` at `rate` events/s: every tick what is due, without waiting for the
    acks of earlier ticks (as `bench.latency`); each id stamped at hand-over by `clock`, and
    in `acked` when its tick's `publish_many` returned (all of the tick acknowledged)."""

    def stamp_acks(task: asyncio.Task[list[PublishOutcome]]) -> None:
        if acked is not None and not task.cancelled() and task.exception() is None:
            at = clock()
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
            now = clock()
            for document in batch:
                sent_at[document["event_id"]] = now
            pending.append(asyncio.create_task(pub.publish_many(batch)))
            pending[-1].add_done_callback(stamp_acks)
            sent += due
        await asyncio.sleep(TICK_S)
    return [outcome for done in await asyncio.gather(*pending) for outcome in done]


async def read_socket(subscription: Subscription, arrivals: Arrivals) -> None:
    """Stamp each event as its frame is handed to us, before parsing it."""
    while True:
        text = await subscription.socket.recv()
        at = time.perf_counter()
        message = json.loads(text)
        if "control" in message:
            arrivals.controls.append(message)
        else:
            arrivals.saw(message["id"], at)


def member_topics(settings: HubSettings) -> dict[str, EventKind | None]:
    """The topics a `hotel-member` WebSocket session reads (its kinds and refusals), by kind."""
    from streams.gateway.callers import Callers

    identity = Callers(settings).identity(MEMBER)
    assert identity is not None, f"no identity {MEMBER}"
    topics: dict[str, EventKind | None] = {
        settings.topic(POLICIES[kind].topic): kind for kind in identity.reads}
    topics[settings.topic(REFUSAL_TOPIC)] = None
    return topics


async def floor_consumer(settings: HubSettings, topics: Sequence[str]) -> AIOKafkaConsumer:
    """The floor's consumer as the gateway's feed makes one, at the end of every partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_auth(),
        group_id=None, enable_auto_commit=False, isolation_level="read_committed",
        client_id="bench-gateway-floor", **FEED_FETCH)
    await asyncio.wait_for(consumer.start(), settings.connect_timeout_s)
    partitions = [TopicPartition(topic, p) for topic in topics
                  for p in range(settings.topic_partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:  # resolve the positions now, not at the first fetch
        await consumer.position(tp)
    return consumer


async def read_floor(consumer: AIOKafkaConsumer, codec: ConfluentAvroCodec,
                     kinds: dict[str, EventKind | None], arrivals: Arrivals) -> None:
    """Decode and serialise every record as the gateway does, stamped when the JSON is ready."""
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=500)
        records = sorted((r for batch in batches.values() for r in batch),
                         key=lambda record: record.timestamp)
        for record in records:
            kind = kinds[record.topic]
            if kind is None or record.value is None:
                continue
            event = (codec.decode_known(kind, record.value)
                     or await codec.decode(kind, record.value))
            json.dumps(event.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)
            arrivals.saw(str(event.event_id), time.perf_counter())


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def figures(ids: Sequence[str], sent_at: dict[str, float], arrivals: Arrivals,
            duplicates_before: int) -> dict[str, Any]:
    latencies = [(arrivals.at[i] - sent_at[i]) * 1000 for i in ids if i in arrivals.at]
    return {
        "events": len(ids), "missing": len(ids) - len(latencies),
        "duplicates": arrivals.duplicates - duplicates_before,
        "p50_ms": round(percentile(latencies, 0.50), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
    }


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def websocket_rates(number: int, options: argparse.Namespace, settings: HubSettings,
                          gateway: GatewayProcess, registry: SchemaRegistryClient,
                          pub: HotelEventPublisher, deadline: Deadline) -> dict[str, Any]:
    """Both sides subscribed before anything is published; then each rate in turn."""
    assert gateway.process is not None
    results: dict[str, Any] = {}
    ws, floor = Arrivals(), Arrivals()
    kinds = member_topics(settings)
    consumer = await floor_consumer(settings, list(kinds))
    codec = ConfluentAvroCodec(registry)
    tasks: list[asyncio.Task[None]] = []
    try:
        async with gateway.running().subscribe(MEMBER, PATTERNS) as subscription:
            if subscription.first.get("control") != "subscribed":
                raise RuntimeError(f"the gateway refused the subscription: {subscription.first}")
            tasks = [asyncio.create_task(read_socket(subscription, ws), name="ws"),
                     asyncio.create_task(read_floor(consumer, codec, kinds, floor), name="floor")]
            sent_at: dict[str, float] = {}
            warm = room_documents(WARM_UP, f"{number}-warm")
            await paced(pub, warm, WARM_UP / 0.5, sent_at)
            ids = [doc["event_id"] for doc in warm]
            for side in (ws, floor):
                await side.wait_for(ids, min(DRAIN_S, deadline.remaining_s()))
            results["warm-up"] = {"websocket": figures(ids, sent_at, ws, 0),
                                  "floor": figures(ids, sent_at, floor, 0)}
            for rate in options.rates:
                docs = room_documents(int(rate * options.seconds), f"{number}-{rate:g}")
                ids = [doc["event_id"] for doc in docs]
                duplicates = ws.duplicates, floor.duplicates
                cpu_before, here = cpu_s(gateway.process.pid), Stamp.now()
                acked = Arrivals()
                outcomes = await paced(pub, docs, rate, sent_at, acked=acked)
                gateway_cpu = ((cpu_s(gateway.process.pid) - cpu_before)
                               / (time.perf_counter() - here.wall_s))
                harness_cpu = Rate.between(len(docs), here, Stamp.now()).cpu_per_wall
                for side in (ws, floor):
                    await side.wait_for(ids, min(DRAIN_S, deadline.remaining_s()))
                for task in tasks:
                    if task.done():
                        task.result()  # a side that failed: say why
                results[f"{rate:g}"] = {
                    "not published": sum(not outcome.ok for outcome in outcomes),
                    "gateway CPU/wall while publishing": round(gateway_cpu, 2),
                    "harness CPU/wall while publishing": round(harness_cpu, 2),
                    "websocket": figures(ids, sent_at, ws, duplicates[0]),
                    "floor": figures(ids, sent_at, floor, duplicates[1]),
                    "publish ack": figures(ids, sent_at, acked, 0),
                }
            await asyncio.sleep(QUIET_S)  # a late copy would still be counted
            results["websocket controls"] = ws.controls
            results["duplicates in the run"] = {"websocket": ws.duplicates,
                                                "floor": floor.duplicates}
    finally:
        for task in tasks:
            await cancel_quietly(task)
        await consumer.stop()
    return results


async def webhook_rate(number: int, options: argparse.Namespace, gateway: GatewayProcess,
                       pub: HotelEventPublisher, deadline: Deadline) -> dict[str, Any]:
    """One endpoint of `hotel-member` on a receiver here; a warm-up, then the timed rate."""
    assert gateway.process is not None
    async with receiver() as hooks:
        async with gateway.running().client(MEMBER) as client:
            response = await client.post("/webhooks", json={"url": hooks.url,
                                                            "patterns": PATTERNS})
            if response.status_code != 201:
                raise RuntimeError(f"POST /webhooks: {response.status_code} {response.text}")
            hooks.secret = response.json()["secret"]
        arrivals = Arrivals()
        sent_at: dict[str, float] = {}
        warm = room_documents(WARM_UP, f"{number}-hook-warm")
        await paced(pub, warm, WARM_UP / 0.5, sent_at, time.time)
        ids = [doc["event_id"] for doc in warm]
        seen = await wait_received(hooks, arrivals, ids, deadline, 0)
        warm_figures = figures(ids, sent_at, arrivals, 0)
        rate = options.webhook_rate
        docs = room_documents(int(rate * options.seconds), f"{number}-hook")
        ids = [doc["event_id"] for doc in docs]
        duplicates = arrivals.duplicates
        cpu_before, here = cpu_s(gateway.process.pid), Stamp.now()
        outcomes = await paced(pub, docs, rate, sent_at, time.time)
        gateway_cpu = (cpu_s(gateway.process.pid) - cpu_before) / (time.perf_counter()
                                                                   - here.wall_s)
        harness_cpu = Rate.between(len(docs), here, Stamp.now()).cpu_per_wall
        await wait_received(hooks, arrivals, ids, deadline, seen)
        return {"warm-up": warm_figures, f"{rate:g}": {
            "not published": sum(not outcome.ok for outcome in outcomes),
            "gateway CPU/wall while publishing": round(gateway_cpu, 2),
            "harness CPU/wall while publishing": round(harness_cpu, 2),
            "webhook": figures(ids, sent_at, arrivals, duplicates),
            "bad signatures": len(hooks.bad), "receiver calls": hooks.calls}}


async def wait_received(hooks: Receiver, arrivals: Arrivals, ids: Sequence[str],
                        deadline: Deadline, seen: int) -> int:
    """Until every id reached the receiver (or `DRAIN_S`); `arrivals` take the receiver's
    stamps from its `seen`-th request on. Returns how many requests were taken."""
    wanted = set(ids)
    end = time.monotonic() + min(DRAIN_S, deadline.remaining_s())
    while True:
        for item in hooks.received[seen:]:
            arrivals.saw(item.webhook_id, item.at)
        seen = len(hooks.received)
        if wanted <= arrivals.at.keys() or time.monotonic() > end:
            return seen
        await asyncio.sleep(0.05)


async def one_run(number: int, options: argparse.Namespace, data_dir: Path,
                  deadline: Deadline) -> dict[str, Any]:
    settings = run_settings("gateway", number, data_dir)
    gateway_own = gateway_settings(settings)
    # The gateway's app id (`<prefix>hotelhub`, its webhook group and transactional ids) too.
    await asyncio.to_thread(grant_run, settings, gateway_own)
    gateway = GatewayProcess(gateway_own, free_port(), data_dir / f"gateway-{number}.log")
    results: dict[str, Any] = {}
    try:
        await asyncio.to_thread(gateway.start, timeout_s=min(60.0, deadline.remaining_s()))
        async with (asyncio.timeout(deadline.remaining_s()),
                    SchemaRegistryClient.from_settings(settings) as registry,
                    HotelEventPublisher(system=System.HOTEL_PMS, registry=registry,
                                        settings=settings) as pub):
            results.update(await websocket_rates(number, options, settings, gateway, registry,
                                                 pub, deadline))
            results["webhook"] = await webhook_rate(number, options, gateway, pub, deadline)
        results["webhook dead letters"] = await records_in(
            settings, [settings.topic(WEBHOOK_DEADLETTER_TOPIC)])
        return results
    finally:
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
           for who in ("gateway", "harness")]
    return (f"| {side} | {does} | {rate:g} | {median([f['p50_ms'] for f in found])} | "
            f"{median([f['p99_ms'] for f in found])} | {p99s} | {worst:.1f} | "
            f"{cpu[0]:.2f} / {cpu[1]:.2f} | {sum(f['missing'] for f in found)} / "
            f"{sum(f['duplicates'] for f in found)} |")


def table(runs: list[dict[str, Any]], options: argparse.Namespace) -> str:
    lines = ["| side | does | events/s | p50 ms (median) | p99 ms (median) | p99 per run "
             "| max ms | CPU/wall gateway / here | missing / duplicates |",
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
