"""A realistic month caught up from the log: the hub's worker against a Quix Streams peer.

`python -m bench.month_catchup --runs 3`: publishes the month of `bench.month` once, with
the hub's publisher, to `bench-month-<id>.src.hotel.*`. Then, per run:

1. hub: the month's records are copied as they are (partitions, keys, bytes, headers,
   timestamps) to the run's own `bench-month-<id>.r<n>.hotel.*` (the hub writes derived
   room events into `hotel.room`, so no two runs may share source topics), and a fresh
   `hotelhub worker` process (own app id, data dir, web port) reads them from the start.
   Timed from its first committed offset to zero lag on both of its consumer groups
   (`<app>-hotels`: four event topics and `<app>.hotel-events`; `<app>`, Faust's: the
   state log and the analytics and dead-letter topics); see `bench.lag`. Refusals are the
   records on `<prefix>hotel.refusals` (must be 0).
2. quix: `bench.quix_peer` as a process, new consumer group, on the `src` topics: timed
   the same way on its group (four event topics and its repartition topic).

Both check every record's signature where it enters (the hub's intake; the peer with the
same `streams.wire.signing.Verifier`, one HMAC each, dropping and counting what does not
verify: must be 0). Identities: the publishers act as their systems and the worker as
`hotel-hub`, on grants the policies give the run's prefixes (`bench.common.grant_run`,
removed at the end). The peer connects as the operator: Quix names its changelog and
repartition topics `changelog__<group>...` and `repartition__<group>...`, which no grant
of the policies covers. The harness (topic creation and copies, lag, refusal counts,
deletion) is the operator too.

Rate = the month's events / seconds. Prints a Markdown table (median of the runs), writes
`bench/results/month.json`, deletes every topic of the run. Every wait has a timeout and
a watchdog ends the process (and its children) after `--timeout-s` + 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from bench import month
from bench.common import HUB, OPERATOR, forget_run_grants, grant_run
from bench.lag import LagWatcher, Watched, copy_topic, read_all, records_in
from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, REFUSAL_TOPIC, EventKind
from streams.runners.admin import ensure_topics
from streams.settings import HubSettings, get_settings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.topics import hotel_events_topic, state_topic

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "results" / "month.json"
SOURCES = [POLICIES[kind].topic for kind in (EventKind.ROOM, EventKind.CUSTOMER,
                                             EventKind.RESERVATION, EventKind.CHECKIN_CHECKOUT)]
CHILDREN: list[subprocess.Popen[bytes]] = []
log = logging.getLogger("bench.month_catchup")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def watchdog(after_s: float) -> None:
    def fire() -> None:
        print(f"month_catchup: still running after {after_s:g} s; stopping", file=sys.stderr,
              flush=True)
        for child in CHILDREN:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGKILL)
        os._exit(3)

    timer = threading.Timer(after_s, fire)
    timer.daemon = True
    timer.start()


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


async def catch_up(process: subprocess.Popen[bytes], watcher_settings: HubSettings,
                   groups: list[Watched], *, events: int, timeout_s: float, name: str,
                   log_path: Path) -> dict[str, Any]:
    """Poll the groups' lag from spawn until first commit, then until zero lag (connecting
    as `watcher_settings`: the operator, who may describe every group)."""
    spawned, first, last_log = time.time(), None, 0.0
    load = [os.getloadavg()[0]]
    cpu_first = 0.0
    busy_until: dict[str, float] = {}
    async with LagWatcher(watcher_settings, groups) as watcher:
        end = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}); see {log_path}")
            if time.monotonic() > end:
                raise TimeoutError(f"{name} not caught up within {timeout_s:g} s; "
                                   f"see {log_path}")
            snap = await asyncio.wait_for(watcher.snapshot(), 30)
            if first is None and snap.committed_any:
                first, cpu_first = snap.at, cpu_s(process.pid)
            for topic, behind in snap.lag.items():
                if behind > 16 or topic not in busy_until:  # more than markers left
                    busy_until[topic] = snap.at
            if first is not None and snap.caught_up:
                break
            if snap.at - last_log > 10:
                log.warning("%s: lag %s", name, snap.lag)
                last_log = snap.at
            await asyncio.sleep(0.25)
    assert first is not None
    seconds = snap.at - first
    load.append(os.getloadavg()[0])
    return {"events": events, "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds, 1),
            "spawn_to_first_commit_s": round(first - spawned, 2),
            "spawn_to_zero_lag_s": round(snap.at - spawned, 2), "zero_lag_at": snap.at,
            "cpu_per_wall": round((cpu_s(process.pid) - cpu_first) / seconds, 2),
            "load_average_1m_at_spawn_and_end": load,
            "topic_done_after_first_commit_s": {
                topic: round(max(at - first, 0.0), 1) for topic, at in busy_until.items()}}


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    CHILDREN.append(process)
    return process


async def hub_run(base: HubSettings, prefix: str, n: int, events: int, data_dir: Path,
                  timeout_s: float) -> dict[str, Any]:
    run_prefix = f"{prefix}r{n}."
    settings = base.model_copy(update={"topic_prefix": run_prefix,
                                       "app_id": f"{run_prefix}hub"}).as_identity(HUB)
    operator = settings.as_identity(OPERATOR)
    await asyncio.to_thread(grant_run, settings)
    await ensure_topics(operator)
    for topic in SOURCES:
        await copy_topic(operator, f"{prefix}src.{topic}", settings.topic(topic),
                         timeout_s=timeout_s)
    env = {**os.environ, "HOTELHUB_TOPIC_PREFIX": run_prefix, "HOTELHUB_APP_ID": settings.app_id,
           "HOTELHUB_WEB_PORT": str(free_port()), "PYTHONUNBUFFERED": "1",
           "HOTELHUB_WORKER_DATA_DIR": str(data_dir / f"hub-{n}"), "HOTELHUB_IDENTITY": HUB}
    hotelhub = Path(sys.executable).parent / "hotelhub"
    log_path = data_dir / f"hub-{n}.log"
    process = spawn([str(hotelhub), "worker", "--loglevel", "info"], env, log_path)
    groups = [Watched(settings.processor_group,
                      [settings.topic(t) for t in SOURCES] + [hotel_events_topic(settings)]),
              Watched(settings.app_id, [state_topic(settings),
                                        settings.topic(POLICIES[EventKind.ANALYTICS].topic),
                                        settings.topic(DEADLETTER_TOPIC)])]
    try:
        figures = await catch_up(process, operator, groups, events=events,
                                 timeout_s=timeout_s, name=f"hub run {n}", log_path=log_path)
    finally:
        await asyncio.to_thread(stop, process)
    figures |= await refusals(operator, timeout_s)
    figures["derived_and_internal_records"] = await records_in(
        operator, [hotel_events_topic(settings), state_topic(settings)])
    return figures


async def refusals(settings: HubSettings, timeout_s: float) -> dict[str, Any]:
    """Refusals on the run's refusal topic by reason, with the first of each; dead letters."""
    found = await read_all(settings, settings.topic(REFUSAL_TOPIC), timeout_s=timeout_s)
    reasons: Counter[str] = Counter()
    examples: dict[str, str] = {}
    async with SchemaRegistryClient(settings.registry_url) as registry:
        codec = ConfluentAvroCodec(registry)
        for _, _, value, _, _ in found:
            refusal = await codec.decode_refusal(value or b"")
            reasons[refusal.reason_code.value] += 1
            examples.setdefault(refusal.reason_code.value,
                                f"{refusal.event_type} {refusal.entity_id}: {refusal.reason}")
    dead = await read_all(settings, settings.topic(DEADLETTER_TOPIC), timeout_s=timeout_s)
    return {"refusals": len(found), "refusals_by_reason": dict(reasons),
            "refusal_examples": examples, "deadletters": len(dead)}


async def quix_run(base: HubSettings, prefix: str, n: int, events: int, data_dir: Path,
                   timeout_s: float, guarantee: str) -> dict[str, Any]:
    group = f"{prefix}r{n}.quix"
    log_path = data_dir / f"quix-{n}.log"
    operator = base.as_identity(OPERATOR)
    # The peer reads its credentials as the settings do (HOTELHUB_IDENTITY's secret file),
    # and the registry from SCHEMA_REGISTRY_URL: no secret on its command line. It acts as
    # the operator: its changelog__/repartition__ topics are under no grant of the policies.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOTELHUB_IDENTITY": OPERATOR}
    process = spawn([sys.executable, "-m", "bench.quix_peer",
                     "--bootstrap", base.bootstrap_servers,
                     "--prefix", f"{prefix}src.", "--group", group, "--guarantee", guarantee,
                     "--state-dir", str(data_dir / f"quix-{n}")], env, log_path)
    watched = Watched(group, [f"{prefix}src.{topic}" for topic in SOURCES],
                      find=lambda names: [name for name in names
                                          if name.startswith("repartition__") and group in name],
                      expect_found=len(SOURCES) + 1)
    try:
        figures = await catch_up(process, operator, [watched], events=events,
                                 timeout_s=timeout_s, name=f"quix run {n}", log_path=log_path)
    finally:
        await asyncio.to_thread(stop, process)
    lines = log_path.read_text(errors="replace").strip().splitlines()
    with contextlib.suppress(ValueError, IndexError):
        figures["peer_says"] = json.loads(lines[-1])
    figures["topics"] = watched.topics
    first_record = figures.get("peer_says", {}).get("first_record_at")
    if first_record:  # Quix commits first ~8 s after it starts processing (exactly-once)
        figures["events_per_s_from_first_record"] = round(
            events / (figures["zero_lag_at"] - first_record), 1)
    return figures


async def drop_topics(operator: HubSettings, prefix: str) -> list[str]:
    """Every topic with the run's prefix in its name (hub, Faust, Quix changelogs and
    repartitions), as the operator."""
    admin = AIOKafkaAdminClient(bootstrap_servers=operator.bootstrap_servers,
                                **operator.kafka_auth(), request_timeout_ms=30_000)
    await asyncio.wait_for(admin.start(), 15)
    try:
        ours = sorted(name for name in await admin.list_topics() if prefix in name)
        if ours and prefix.startswith("bench-month-"):
            await asyncio.wait_for(admin.delete_topics(ours), 60)
        return ours
    finally:
        await admin.close()


def _median(runs: list[dict[str, Any]], side: str, key: str) -> float:
    return float(statistics.median(run[side][key] for run in runs))


async def run(options: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    prefix = f"bench-month-{uuid.uuid4().hex[:8]}."
    base = get_settings().model_copy(update={"topic_prefix": f"{prefix}src.",
                                             "app_id": f"{prefix}src.hub"})
    operator = base.as_identity(OPERATOR)
    events = month.generate(seed=options.seed)
    runs: list[dict[str, Any]] = []
    try:
        # The publishers (their systems) may write the src topics once these are granted.
        await asyncio.to_thread(grant_run, base)
        await ensure_topics(operator)
        async with SchemaRegistryClient(base.registry_url) as registry:
            sent, publish_s = await month.publish(events, settings=base, registry=registry,
                                                  chunk=options.chunk)
        log.warning("published %d events in %.1f s under %s", sent, publish_s, prefix)
        for n in range(1, options.runs + 1):
            hub = await hub_run(base, prefix, n, sent, data_dir, options.timeout_s)
            log.warning("hub run %d: %s", n, hub)
            quix = await quix_run(base, prefix, n, sent, data_dir, options.timeout_s,
                                  options.quix_guarantee)
            log.warning("quix run %d: %s", n, quix)
            runs.append({"hub": hub, "quix": quix,
                         "hub/quix": round(hub["events_per_s"] / quix["events_per_s"], 3)})
    finally:
        dropped = await drop_topics(operator, prefix)
        log.warning("deleted %d topics under %s", len(dropped), prefix)
        await asyncio.to_thread(forget_run_grants, operator, prefix)
    return {
        "month": {"events": sent, "by_kind": month.describe(events), "seed": options.seed,
                  "publish_s": round(publish_s, 1), "prefix": prefix},
        "median": {"hub events/s": _median(runs, "hub", "events_per_s"),
                   "quix events/s": _median(runs, "quix", "events_per_s"),
                   "hub/quix": statistics.median(run["hub/quix"] for run in runs),
                   "hub refusals": [run["hub"]["refusals"] for run in runs]},
        "runs": runs,
        "environment": {"quix processing guarantee": options.quix_guarantee,
                        "hub Faust processing guarantee": base.processing_guarantee,
                        "topic partitions": base.topic_partitions, "CPU count": os.cpu_count(),
                        "Kafka": f"{base.kafka_version} at {base.bootstrap_servers}",
                        "Python": platform.python_version(), "platform": platform.platform(),
                        "run at": datetime.now(UTC).isoformat(timespec="seconds")},
    }


def markdown(document: dict[str, Any]) -> str:
    runs = document["runs"]
    rows = ["| metric | hub | quix | hub/quix |", "|---|---:|---:|---:|"]
    median = document["median"]
    rows.append(f"| catch-up events/s, first commit → zero lag (median of {len(runs)}) "
                f"| {median['hub events/s']:,.0f} | {median['quix events/s']:,.0f} "
                f"| {median['hub/quix']:.2f} |")
    for n, item in enumerate(runs, 1):
        hub, quix = item["hub"], item["quix"]
        rows.append(f"| run {n}: events/s (seconds) | {hub['events_per_s']:,.0f} "
                    f"({hub['seconds']:.1f} s) | {quix['events_per_s']:,.0f} "
                    f"({quix['seconds']:.1f} s) | {item['hub/quix']:.2f} |")
        rows.append(f"| run {n}: spawn → first commit / → zero lag (s); CPU/wall | "
                    f"{hub['spawn_to_first_commit_s']:.1f} / {hub['spawn_to_zero_lag_s']:.1f}; "
                    f"{hub['cpu_per_wall']:.2f} | {quix['spawn_to_first_commit_s']:.1f} / "
                    f"{quix['spawn_to_zero_lag_s']:.1f}; {quix['cpu_per_wall']:.2f} | |")
        done = {topic.rsplit(".", 1)[-1]: at
                for topic, at in hub.get("topic_done_after_first_commit_s", {}).items()}
        if "hotel-events" in done:
            rows.append(f"| run {n}: hub phases after first commit (s): processor done "
                        f"(hotel-events) / Faust mirror done (hotel-state) "
                        f"| {done['hotel-events']} / {done.get('hotel-state')} | | |")
        if "events_per_s_from_first_record" in quix:
            rows.append(f"| run {n}: quix from its first decoded record → zero lag, events/s "
                        f"| | {quix['events_per_s_from_first_record']:,.0f} | "
                        f"{hub['events_per_s'] / quix['events_per_s_from_first_record']:.2f} |")
        rows.append(f"| run {n}: hub refusals (must be 0) / dead letters | {hub['refusals']:,} "
                    f"{hub['refusals_by_reason'] or ''} / {hub['deadletters']} | | |")
        rows.append(f"| run {n}: records whose signature did not verify (must be 0; the hub "
                    f"refuses them, the peer drops them) | | "
                    f"{quix.get('peer_says', {}).get('unverified', '?')} | |")
    rows.append("")
    rows.append(f"- month: {document['month']['events']:,} events, published in "
                f"{document['month']['publish_s']} s; {document['month']['by_kind']}")
    rows += [f"- {name}: {value}" for name, value in document["environment"].items()]
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=500, help="publishes in flight at once")
    parser.add_argument("--timeout-s", type=float, default=300.0,
                        help="budget of each wait; the watchdog allows (runs*2+2) of them")
    parser.add_argument("--quix-guarantee", default="exactly-once",
                        choices=("exactly-once", "at-least-once"))
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="a folder for the worker and peer logs and state (kept)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    watchdog(options.timeout_s * (options.runs * 2 + 2) + 60)
    settings = get_settings()
    for host in [*settings.bootstrap_servers.split(","), settings.registry_url]:
        if not any(loop in host for loop in ("127.0.0.1", "localhost", "[::1]")):
            raise SystemExit(f"refusing to benchmark a non-loopback host: {host}")
    if options.keep_logs is not None:
        options.keep_logs.mkdir(parents=True, exist_ok=True)
        document = asyncio.run(run(options, options.keep_logs))
    else:
        with tempfile.TemporaryDirectory(prefix="hotelhub-bench-month-") as data_dir:
            document = asyncio.run(run(options, Path(data_dir)))
    print()
    print(markdown(document))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(document, indent=2, default=str) + "\n",
                              encoding="utf-8")
    print(f"\nJSON written to {options.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
