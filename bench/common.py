"""What every benchmark shares: one time budget, rates, progress, isolation, reports.

Each benchmark (`bench.produce`, `bench.consume`, `bench.stay`, `bench.latency`) runs the
hub's side and a bare aiokafka side doing the same work in one process, `--runs` times,
and reports the median. Every run works in topics of its own (a fresh
`HOTELHUB_TOPIC_PREFIX`), deleted at the end, on a loopback broker only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import platform
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.core.kinds import DEADLETTER_TOPIC, REFUSAL_TOPIC, EventKind, System
from streams.core.models import HotelEvent
from streams.settings import HubSettings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
HEADER_SIZE = 5
"""Confluent framing: magic byte and a 4-byte schema id before the Avro body."""
OVERBOOKING_ALLOWANCE = '{"*": {"*": "100000000"}}'
"""Every bench booking is for the same nights of one room type: none may be refused."""
HUB = System.HOTEL_HUB.value
"""The identity of every hub side (and of a raw side standing in for the hub's processor)."""
OPERATOR = "operator"
"""The identity of the harness's own topic admin (creating, copying, deleting, watching lag)."""

log = logging.getLogger("bench")
T = TypeVar("T")


# --- time ------------------------------------------------------------------------------


class Deadline:
    """One time budget for the run: each wait takes what is left, so everything ends by itself."""

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self._end = time.monotonic() + total_s

    def remaining_s(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the benchmark exceeded its {self.total_s:g} s budget")
        return left


@dataclass(frozen=True)
class Stamp:
    """Wall time and this process's CPU time (all threads) at one moment; CPU over wall near
    1.0 means the client (one core, the GIL) was the bottleneck."""

    wall_s: float
    cpu_s: float

    @classmethod
    def now(cls) -> Stamp:
        return cls(time.perf_counter(), time.process_time())


@dataclass(frozen=True)
class Rate:
    events: int
    seconds: float
    cpu_s: float

    @classmethod
    def between(cls, events: int, start: Stamp, end: Stamp) -> Rate:
        return cls(events, end.wall_s - start.wall_s, end.cpu_s - start.cpu_s)

    @property
    def cpu_per_wall(self) -> float:
        return self.cpu_s / self.seconds if self.seconds > 0 else float("nan")

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Progress:
    """Records processed from the first one until every wanted event id was seen; both sides
    of a benchmark use it, so both are timed the same way."""

    wanted: set[str]
    processed: int = 0
    ready_at: Stamp | None = None
    """When the side was ready to read (assigned, state restored); None: from the first."""
    first_at: Stamp | None = None
    done_at: Stamp | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def saw(self, event_id: str) -> None:
        self.processed += 1
        if self.first_at is None:
            self.first_at = Stamp.now()
        self.wanted.discard(event_id)
        if not self.wanted and self.done_at is None:
            self.done_at = Stamp.now()
            self.done.set()

    def ready(self) -> None:
        if self.ready_at is None:
            self.ready_at = Stamp.now()

    def rate(self) -> Rate:
        """records / (last - ready) when the side said it was ready; otherwise
        (records - 1) / (last - first): the first record starts the clock, uncounted."""
        assert self.first_at is not None and self.done_at is not None
        if self.ready_at is not None:
            return Rate.between(self.processed, self.ready_at, self.done_at)
        return Rate.between(self.processed - 1, self.first_at, self.done_at)


class AgentSink:
    """A sink for the hub's event agents: records each event they processed."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    async def __call__(self, event: HotelEvent) -> None:
        self.progress.saw(str(event.event_id))


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def watchdog(after_s: float) -> None:
    """Last resort: if a client thread hangs on shutdown, end the process instead of leaving it."""

    def fire() -> None:
        print(f"bench: still running after {after_s:g} s; exiting", file=sys.stderr, flush=True)
        os._exit(3)

    timer = threading.Timer(after_s, fire)
    timer.daemon = True
    timer.start()




# --- isolation ---------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_loopback(settings: HubSettings) -> None:
    """Refuse anything but loopback for the broker and the registry: a benchmark floods them."""
    hosts = [server.strip().rsplit(":", 1)[0] for server in settings.bootstrap_servers.split(",")]
    hosts.append(urlsplit(settings.registry_url).hostname or "")
    remote = [host for host in hosts if not _is_loopback(host)]
    if remote:
        raise SystemExit(f"refusing to benchmark non-loopback hosts: {', '.join(remote)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_settings(bench: str, run: int, data_dir: Path) -> HubSettings:
    """Settings of one run: topics, app id (consumer groups), web port and data dir of its own,
    acting as the hub (`hotel-hub`), with the run's grants on the broker (`grant_run`).

    Also put in the environment, so anything still reading `get_settings()` (and a worker
    subprocess) sees the same.
    """
    prefix = f"bench-{bench}-{uuid.uuid4().hex[:8]}-r{run}."
    os.environ.update({
        "HOTELHUB_TOPIC_PREFIX": prefix,
        "HOTELHUB_APP_ID": f"{prefix}hub",
        "HOTELHUB_WEB_PORT": str(free_port()),
        "HOTELHUB_WORKER_DATA_DIR": str(data_dir / f"run-{run}"),
        "HOTELHUB_OVERBOOKING": OVERBOOKING_ALLOWANCE,
        "HOTELHUB_IDENTITY": HUB,
    })
    get_settings.cache_clear()
    settings = HubSettings()
    check_loopback(settings)
    grant_run(settings)
    return settings


def grant_run(*deployments: HubSettings) -> None:
    """The ACLs the policies give any deployment, for these (topic prefix, app id): each system
    its kinds' topics under the prefix, the hub those and its app id's groups, transactional
    ids and topics (`streams.wire.acls`). Applied as `hotelhub identity sync` applies them (the
    embedded node's own login, or the operator's); nothing with security off. The broker
    knows nothing of a run's prefix before this, so every client of the run would be refused.
    """
    if not deployments or not deployments[0].secured:
        return
    from streams.ops.security import sync

    sync(deployments[0].as_identity(OPERATOR), deployments=list(deployments))


def forget_run_grants(settings: HubSettings, prefix: str | None = None) -> None:
    """Remove the grants of a run's prefix (`grant_run`) once its topics are gone. Best effort."""
    prefix = prefix or settings.topic_prefix
    if not settings.secured or not prefix.startswith("bench-"):
        return
    from streams.ops.security import forget_prefix

    try:
        forget_prefix(settings.as_identity(OPERATOR), prefix)
    except Exception as exc:
        log.warning("could not delete the ACLs of %s*: %r", prefix, exc)


async def admin(settings: HubSettings) -> AIOKafkaAdminClient:
    client = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                 **settings.kafka_auth(),
                                 request_timeout_ms=int(settings.connect_timeout_s * 1000))
    await asyncio.wait_for(client.start(), timeout=settings.connect_timeout_s)
    return client


async def drop_run_topics(settings: HubSettings) -> None:
    """Delete every topic of the run's prefix (hub topics, changelogs, the raw sides' own) as
    the operator (nobody else may delete topics), then the run's grants. Best effort: a failed
    clean-up is logged, never hides the run's figures."""
    try:
        client = await admin(settings.as_identity(OPERATOR))
        try:
            ours = [name for name in await client.list_topics()
                    if name.startswith(settings.topic_prefix)]
            if ours:
                await asyncio.wait_for(client.delete_topics(ours), timeout=30)
        finally:
            await client.close()
    except Exception as exc:
        log.warning("could not delete %s* topics: %r", settings.topic_prefix, exc)
    await asyncio.to_thread(forget_run_grants, settings)


async def records_in(settings: HubSettings, topics: Sequence[str]) -> int:
    """How many records the topics hold (end - start offsets; 0 when a topic is missing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), timeout=settings.connect_timeout_s)
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(cluster.partitions_for_topic(topic) or ())]
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


async def refusals_and_dead_letters(settings: HubSettings) -> dict[str, int]:
    """The run's refusal and dead-letter records: a fair run has none."""
    return {
        "refusals": await records_in(settings, [settings.topic(REFUSAL_TOPIC)]),
        "dead letters": await records_in(settings, [settings.topic(DEADLETTER_TOPIC)]),
    }


# --- events ------------------------------------------------------------------------------


def documents(kind: EventKind, count: int, *, side: str, **data: Any
              ) -> tuple[System, list[dict[str, Any]]]:
    """`count` valid documents of `kind` from the test samples, ids unique to `side`, so the
    keys spread over the partitions and no side's events touch another's."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.events import sample

    system = sample(kind)[0]
    return system, [sample(kind, f"{side}-{index:07d}", **data)[1] for index in range(count)]


def room_document() -> tuple[System, dict[str, Any]]:
    """One room of the type the bench books: a booking for a type the hotel lacks is refused."""
    from tests.support.events import sample

    system, room = sample(EventKind.ROOM, "BENCH-ROOM", room_type="DBL",
                          status="vacant_clean", maintenance_notes=None, version=1)
    return system, {**room, "action": "status_changed"}


# --- the hub's worker --------------------------------------------------------------------


def running_hub(settings: HubSettings, sinks: Sequence[Callable[[Any], Any]] = ()
                ) -> contextlib.AbstractAsyncContextManager[Any]:
    """The hub's worker in this event loop, as `streams.worker.run` offers it."""
    from streams.worker import run

    return run.running_hub(settings, sinks=sinks)  # type: ignore[no-any-return]


def hub_agent(hub: Any, name: str) -> Any:
    """One of the hub app's Faust agents, by the end of its name (`mirror_hotel_state`)."""
    for agent_name, agent in hub.app.agents.items():
        if agent_name.rsplit(".", 1)[-1] == name:
            return agent
    raise LookupError(f"the hub has no agent named {name}: {sorted(hub.app.agents)}")


# --- report ------------------------------------------------------------------------------


@dataclass
class Side:
    """One side of a benchmark: what it does, and its rate in each run."""

    name: str
    does: str
    runs: list[Rate] = field(default_factory=list)

    @property
    def median_per_s(self) -> float:
        return statistics.median(rate.per_s for rate in self.runs)

    @property
    def median_cpu_per_wall(self) -> float:
        return statistics.median(rate.cpu_per_wall for rate in self.runs)


def rate_table(sides: Sequence[Side], *, unit: str = "events/s") -> str:
    base = sides[0].median_per_s
    lines = [f"| side | does | {unit} (median) | runs | CPU/wall | vs {sides[0].name} |",
             "|---|---|---:|---|---:|---:|"]
    for side in sides:
        runs = " / ".join(f"{rate.per_s:,.0f}" for rate in side.runs)
        lines.append(f"| {side.name} | {side.does} | {side.median_per_s:,.0f} | {runs} | "
                     f"{side.median_cpu_per_wall:.2f} | {side.median_per_s / base:.2f} |")
    return "\n".join(lines)


def environment(settings: HubSettings, options: argparse.Namespace) -> dict[str, Any]:
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    return {
        **{name: value for name, value in vars(options).items() if name != "output"},
        "event loop": loop,
        "CPU count": os.cpu_count(),
        "load average at the end": os.getloadavg(),
        "Kafka": f"{settings.kafka_version} (from settings) at {settings.bootstrap_servers}",
        "topic partitions": settings.topic_partitions,
        "Python": platform.python_version(),
        "platform": platform.platform(),
    }


def report(name: str, table: str, env: dict[str, Any], document: dict[str, Any],
           output: Path | None) -> None:
    """Print the table and the environment; write the JSON to bench/results/<name>.json."""
    print()
    print(table)
    print()
    for key, value in env.items():
        print(f"- {key}: {value}")
    path = output or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Results are per machine.\n*.json\n", encoding="utf-8")
    path.write_text(json.dumps({"environment": env, **document}, indent=2, default=str) + "\n",
                    encoding="utf-8")
    print(f"\nJSON written to {path}")


def side_json(side: Side) -> dict[str, Any]:
    return {"does": side.does, "median_events_per_s": round(side.median_per_s, 1),
            "runs": [asdict(rate) | {"events_per_s": round(rate.per_s, 1)}
                     for rate in side.runs]}


def base_parser(doc: str | None, *, events: int, timeout_s: float) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--events", type=int, default=events, help="events per side and run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--timeout-s", type=float, default=timeout_s,
                        help="budget for the whole benchmark (seconds)")
    parser.add_argument("--output", type=Path, default=None, help="JSON results file")
    return parser


def check_options(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    if options.events < 2 or options.runs < 1 or options.timeout_s <= 0:
        parser.error("--events must be >= 2, --runs >= 1 and --timeout-s > 0")


def main_loop(coro: Callable[[], Coroutine[Any, Any, T]], *, timeout_s: float) -> T:
    """Run the benchmark on uvloop (as the hub's own loops run), within its budget."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    watchdog(timeout_s + 60)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro())
    return uvloop.run(coro())


async def cancel_quietly(task: Awaitable[Any]) -> None:
    if isinstance(task, asyncio.Future):
        task.cancel()
    with contextlib.suppress(BaseException):
        await task
