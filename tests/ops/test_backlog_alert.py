"""The backlog alert as Prometheus itself evaluates it, on the figures the gateway exports.

A real Prometheus (Debian's `prometheus` package) scrapes the gateway's `/metrics` every
second and loads the repository's `monitoring/prometheus/alerts.yml`. The expression of
`HotelHubBacklogOver1000`, read from that file by name, must be empty while the worker keeps
up, and still while 600 events wait behind the stopped worker; it must return the worker's
group once 2,000 wait (nobody but the gateway exports lag then: that is why it does), and be
empty again after a restart drains them.

The gateway is scraped by two jobs, as a worker and a gateway both export the same group's
figures in a deployment: an expression that added the jobs up would cross at 600.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp
import httpx
import pytest
import yaml
from aiokafka import TopicPartition

from streams.core.kinds import POLICIES, EventKind, System
from streams.ops.lag import Lag, group_lag
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.partitioning import hotel_partition
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import status_change
from tests.support.gateway import GatewayProcess, credentials, gateway_settings
from tests.support.hotel import new_hotel_id
from tests.support.outside import health, until
from tests.support.workers import (
    REPO,
    free_port,
    isolated,
    stopped_at_exit,
    worker_group,
)

pytestmark = pytest.mark.integration

ALERTS = REPO / "monitoring" / "prometheus" / "alerts.yml"
ALERT = "HotelHubBacklogOver1000"
THRESHOLD = 1000
BELOW = 600
BACKLOG = 2000
"""Events waiting behind the stopped worker: first below the threshold, then twice it."""
JOBS = ("hotelhub-gateway", "hotelhub-worker")
PROMETHEUS = Path("/usr/bin/prometheus")
T = TypeVar("T")


def alert_expr(path: Path, name: str) -> str:
    """The `expr` of alerting rule `name` in the Prometheus rule file at `path`."""
    if not path.is_file():
        raise AssertionError(f"no Prometheus rule file at {path}")
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    found = [rule for group in document.get("groups") or []
             for rule in group.get("rules") or [] if rule.get("alert") == name]
    if len(found) != 1:
        raise AssertionError(f"{path}: {len(found)} alerting rules named {name!r}, want 1")
    expr = found[0].get("expr")
    if not isinstance(expr, str) or not expr.strip():
        raise AssertionError(f"{path}: alert {name!r} has no expr")
    return expr


@contextlib.contextmanager
def prometheus(work: Path, *, target: str, auth: tuple[str, str], rules: Path) -> Iterator[str]:
    """A Prometheus of this test's own on a free loopback port, scraping `target`'s /metrics
    as each of `JOBS` and evaluating `rules` every second; its URL once it is ready, stopped
    by its pid."""
    if not PROMETHEUS.is_file():
        raise AssertionError(f"{PROMETHEUS} is missing: install Debian's `prometheus` package")
    url = f"http://127.0.0.1:{free_port()}"
    config = work / "prometheus.yml"
    # JSON is YAML: no quoting of the secret to get wrong.
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{
            "job_name": job, "metrics_path": "/metrics",
            "basic_auth": {"username": auth[0], "password": auth[1]},
            "static_configs": [{"targets": [target]}],
        } for job in JOBS],
    }), encoding="utf-8")
    log = work / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address={url.removeprefix('http://')}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"prometheus exited: {log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"prometheus not ready: {log.read_text()}"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def query(client: httpx.AsyncClient, expr: str, *, by: str = "group") -> dict[str, float]:
    """An instant query's samples, by their label `by`."""
    answer = await client.get("/api/v1/query", params={"query": expr})
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", (expr, body)
    return {sample["metric"].get(by, ""): float(sample["value"][1])
            for sample in body["data"]["result"]}


async def alert_states(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    """The state (pending, firing) of each active alert `name`, by its `group` label."""
    body = (await client.get("/api/v1/alerts")).json()
    return {alert["labels"].get("group", ""): alert["state"]
            for alert in body["data"]["alerts"] if alert["labels"]["alertname"] == name}


async def publish_rooms(settings: HubSettings, hotel_id: str, count: int, first: int) -> None:
    """`count` housekeeping changes at `hotel_id` (one partition of the room topic)."""
    documents = [{**status_change(index, rooms=50), "hotel_id": hotel_id}
                 for index in range(first, first + count)]
    async with SchemaRegistryClient.from_settings(settings) as registry, HotelEventPublisher(
            system=System.HOTEL_PMS, registry=registry, settings=settings) as publisher:
        outcomes = await publisher.publish_many(documents)
    assert all(outcome.ok for outcome in outcomes), [o.problem for o in outcomes if not o.ok]


async def test_the_backlog_alert_crosses_when_the_worker_stops_and_clears_after(
        hub_settings: HubSettings, tmp_path: Path) -> None:
    expr = alert_expr(ALERTS, ALERT)
    own = isolated(hub_settings, "backlog")
    # No report ticks: no records of the clock's own beside the test's.
    [worker] = worker_group(own, "backlog", tmp_path, count=1,
                            extra_env={"HOTELHUB_REPORT_TICK_S": "0"})
    hub = own.model_copy(update={"app_id": worker.env["HOTELHUB_APP_ID"]})
    group = hub.processor_group
    hotel_id = new_hotel_id()
    rooms = TopicPartition(hub.topic(POLICIES[EventKind.ROOM].topic),
                           hotel_partition(hotel_id, hub.topic_partitions))
    # The gateway of this worker's app (so its groups are the worker's), as the hub.
    gateway = GatewayProcess(gateway_settings(own, app_id=hub.app_id), free_port(),
                             tmp_path / "gateway.log")

    async def lag_of_rooms() -> int | None:
        found: Lag = await group_lag(hub, [group])
        return found.get((group, rooms))

    def per_job() -> Awaitable[dict[str, float]]:
        """The group's backlog as each job scraped it."""
        return query(prom, f'sum by (job) (hotelhub_consumer_group_lag_records{{group="{group}"}})',
                     by="job")

    async def wait(ask: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str,
                   timeout_s: float) -> T:
        return await until([worker], ask, done, what, timeout_s=timeout_s,
                           extra=lambda: gateway.log.read_text()[-2000:])

    with stopped_at_exit(worker), contextlib.ExitStack() as stack:
        stack.callback(gateway.stop)
        worker.start()
        gateway.start()
        url = stack.enter_context(prometheus(tmp_path, target=f"127.0.0.1:{gateway.port}",
                                             auth=credentials(own, "operator"), rules=ALERTS))
        async with httpx.AsyncClient(base_url=url, timeout=5) as prom, \
                aiohttp.ClientSession() as session:
            await wait(lambda: health(session, worker),
                       lambda answer: answer is not None and answer.status == 200,
                       "healthy worker", timeout_s=45)
            # The worker keeps up: it commits past a few events of the hotel.
            await publish_rooms(own, hotel_id, 10, first=0)
            await wait(lag_of_rooms, lambda lag: lag == 0,
                       f"{group} committed to the end of {rooms}", timeout_s=20)
            # Both jobs have the gateway's figure for the group, so "empty" below means "not
            # crossing", not "never scraped".
            await wait(per_job, lambda jobs: jobs == dict.fromkeys(JOBS, 0),
                       f"lag 0 of {group} scraped by {JOBS}", timeout_s=15)
            assert await query(prom, expr) == {}

            await asyncio.to_thread(worker.stop)  # SIGTERM: a clean stop, its offsets kept
            await publish_rooms(own, hotel_id, BELOW, first=10)
            await wait(per_job, lambda jobs: jobs == dict.fromkeys(JOBS, BELOW),
                       f"lag {BELOW} of {group} scraped by {JOBS}", timeout_s=15)
            assert await query(prom, expr) == {}, f"{ALERT} crossed at {BELOW} waiting"

            await publish_rooms(own, hotel_id, BACKLOG - BELOW, first=10 + BELOW)
            crossed = await wait(lambda: query(prom, expr),
                                 lambda samples: samples.get(group, 0) >= THRESHOLD,
                                 f"{ALERT} crossing for {group}", timeout_s=30)
            assert THRESHOLD <= crossed[group] <= BACKLOG, crossed  # counted once
            # Prometheus evaluates the rule itself: the file loaded, its `group` label kept.
            states = await wait(lambda: alert_states(prom, ALERT),
                                lambda found: group in found, f"{ALERT} active", timeout_s=10)
            assert states[group] in ("pending", "firing"), states

            worker.start()
            await wait(lambda: query(prom, expr), lambda samples: samples == {},
                       f"{ALERT} clear after the restart", timeout_s=45)


def test_a_missing_alert_is_named(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "hub", "rules": [
        {"alert": "Other", "expr": "up == 0"}]}]}), encoding="utf-8")
    with pytest.raises(AssertionError, match=ALERT):
        alert_expr(rules, ALERT)
    assert alert_expr(rules, "Other") == "up == 0"
