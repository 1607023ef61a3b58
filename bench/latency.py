"""End to end: publish -> table answer latency, p50/p99, at paced rates.

Each run starts the hub's worker in this process (`streams.worker.run.running_hub`, the
hotel processor and the Faust agents, its own topics and app id), publishes one room and
waits until its table has it, then for each `--rates` value publishes bookings at that
pace for `--seconds` (`publish_many` of what is due every 5 ms; distinct reservation
ids, an overbooking allowance: nothing may be refused). The latency of a booking runs
from the moment it is handed to the publisher to the moment the query table
`reservation_to_state` holds its state: the mirror agent yields the key right after
writing it, and a sink stamps it. A few keys are then read back over HTTP
(`GET /reservations/{hotel}/{id}`) to show the tables answer. The design's target is
p99 < 100 ms. Run with `python -m bench.latency`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    Deadline,
    base_parser,
    documents,
    drop_run_topics,
    environment,
    hub_agent,
    main_loop,
    refusals_and_dead_letters,
    report,
    room_document,
    run_settings,
    running_hub,
)
from streams.core.kinds import EventKind
from streams.runners.publisher import HotelEventPublisher, PublishOutcome
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient
from streams.worker.auth import authorization

TICK_S = 0.005
DOES = ("paced HotelEventPublisher.publish_many -> hotel processor (re-key, rules, state "
        "log, transactions) -> mirror agent -> reservation_to_state table")


class Stamps:
    """When each key was sent and when its table value appeared."""

    def __init__(self) -> None:
        self.sent: dict[bytes, float] = {}
        self.latency_s: dict[bytes, float] = {}
        self._missing: set[bytes] = set()
        self._all_in = asyncio.Event()

    def __call__(self, key: Any) -> None:
        sent = self.sent.get(key) if isinstance(key, bytes) else None
        if sent is not None and key not in self.latency_s:
            self.latency_s[key] = time.perf_counter() - sent
            self._missing.discard(key)
            if not self._missing:
                self._all_in.set()

    async def wait_for(self, keys: Sequence[bytes], timeout_s: float) -> None:
        """Until every key has arrived. O(1) per arrival: looking at every key at every
        arrival was quadratic, and at 1,000 events/s it burnt seconds of the CPU this
        process shares with the hub it measures (py-spy: 12% of the samples)."""
        self._missing = {key for key in keys if key not in self.latency_s}
        self._all_in.clear()
        if self._missing:
            async with asyncio.timeout(timeout_s):
                await self._all_in.wait()


async def paced(pub: HotelEventPublisher, docs: list[dict[str, Any]], rate: float,
                seconds: float, stamps: Stamps, hotel: str) -> list[PublishOutcome]:
    """Publish `rate` events/s for `seconds`: every tick, what is due, without waiting for
    the acks of earlier ticks."""
    count = int(rate * seconds)
    started = time.perf_counter()
    sent = 0
    pending: list[asyncio.Task[list[PublishOutcome]]] = []
    while sent < count:
        due = min(count, int((time.perf_counter() - started) * rate) + 1) - sent
        if due > 0:
            batch = docs[sent:sent + due]
            now = time.perf_counter()
            for document in batch:
                stamps.sent[f"{hotel}:{document['data']['reservation_id']}".encode()] = now
            pending.append(asyncio.create_task(pub.publish_many(batch)))
            sent += due
        await asyncio.sleep(TICK_S)
    return [outcome for done in await asyncio.gather(*pending) for outcome in done]


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_run(number: int, options: argparse.Namespace, data_dir: Path,
                  deadline: Deadline) -> dict[str, Any]:
    settings = run_settings("latency", number, data_dir)
    hotel = settings.default_hotel_id
    stamps = Stamps()
    results: dict[str, Any] = {}
    try:
        async with (asyncio.timeout(deadline.remaining_s() + 30), running_hub(settings) as hub,
                    SchemaRegistryClient(settings.registry_url) as registry):
            hub_agent(hub, "mirror_hotel_state").add_sink(stamps)
            room_system, room = room_document()
            async with HotelEventPublisher(system=room_system, registry=registry,
                                           settings=settings) as pub:
                stamps.sent[f"{hotel}:BENCH-ROOM".encode()] = time.perf_counter()
                await pub.publish_many([room])
            await stamps.wait_for([f"{hotel}:BENCH-ROOM".encode()], deadline.remaining_s())
            for rate in options.rates:
                system, docs = documents(EventKind.RESERVATION, int(rate * options.seconds),
                                         side=f"LAT-{number}-{rate:g}")
                async with HotelEventPublisher(system=system, registry=registry,
                                               settings=settings) as pub:
                    outcomes = await paced(pub, docs, rate, options.seconds, stamps, hotel)
                keys = [f"{hotel}:{doc['data']['reservation_id']}".encode() for doc in docs]
                with contextlib.suppress(TimeoutError):
                    await stamps.wait_for(keys, min(60.0, deadline.remaining_s()))
                latencies = [stamps.latency_s[key] * 1000 for key in keys
                             if key in stamps.latency_s]
                results[f"{rate:g}"] = {
                    "events": len(keys), "not published": sum(not o.ok for o in outcomes),
                    "not in the table after 60 s": len(keys) - len(latencies),
                    "p50_ms": round(percentile(latencies, 0.50), 1) if latencies else None,
                    "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
                    "max_ms": round(max(latencies), 1) if latencies else None,
                }
            results["http answers"] = await http_check(settings, keys[-3:])
        results.update(await refusals_and_dead_letters(settings))
        return results
    finally:
        await drop_run_topics(settings)


async def http_check(settings: HubSettings, keys: Sequence[bytes]) -> list[int]:
    """Status of the table query for a few keys (200: the table answered with the stay)."""
    statuses = []
    operator = settings.as_identity("operator")  # sees every hotel
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for key in keys:
            hotel, _, entity = key.decode().partition(":")
            url = f"http://127.0.0.1:{settings.web_port}/reservations/{hotel}/{entity}"
            async with session.get(url, headers=authorization(operator)) as response:
                statuses.append(response.status)
    return statuses


async def run(options: argparse.Namespace) -> None:
    deadline = Deadline(options.timeout_s)
    runs = []
    with tempfile.TemporaryDirectory(prefix="hotelhub-bench-") as data_dir:
        for number in range(options.runs):
            runs.append(await one_run(number, options, Path(data_dir), deadline))
            print(f"run {number + 1}: {runs[-1]}", flush=True)
    lines = ["| side | does | rate (events/s) | p50 ms (median) | p99 ms (median) | "
             "p99 per run | max ms | events not in the table |",
             "|---|---|---:|---:|---:|---|---:|---:|"]
    for rate in options.rates:
        figures = [result[f"{rate:g}"] for result in runs]
        p99s = [figure["p99_ms"] for figure in figures if figure["p99_ms"] is not None]
        p50s = [figure["p50_ms"] for figure in figures if figure["p50_ms"] is not None]
        lines.append(
            f"| hub | {DOES} | {rate:g} | {statistics.median(p50s) if p50s else '-'} | "
            f"{statistics.median(p99s) if p99s else '-'} | {' / '.join(map(str, p99s))} | "
            f"{max((f['max_ms'] or 0) for f in figures)} | "
            f"{sum(f['not in the table after 60 s'] for f in figures)} |")
    from streams.settings import get_settings

    env = environment(get_settings(), options)
    report("latency", "\n".join(lines), env, {"runs": runs, "target": "p99 < 100 ms"},
           options.output)
    unfair = [result for result in runs if result["refusals"] or result["dead letters"]]
    if unfair:
        raise SystemExit(f"unfair run (refusals or dead letters): {unfair}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__, events=2, timeout_s=900)
    parser.add_argument("--rates", type=lambda text: [float(r) for r in text.split(",")],
                        default=[200.0, 1000.0], help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds at each rate")
    options = parser.parse_args(argv)
    del options.events  # the rate and duration decide the count
    main_loop(lambda: run(options), timeout_s=options.timeout_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
