"""The hotel processor alone on a cold backlog, beside a raw aiokafka transactional loop.

`python -m bench.processor_profile` (see `--help`):

1. publishes a backlog (`--source mixed`: `bench.state`'s mixed stream of `--events`;
   `--source month`: `bench.month`'s month of a 1,200-room hotel, about 57k events) with
   the hub's publishers into topics of this run (`HOTELHUB_TOPIC_PREFIX=bench-proc-<id>.`);
2. `hub`: a fresh `HotelProcessor` (no Faust, no mirror) under a new app id reads the
   backlog cold; timed from the first event decided to the last published one, refusals
   counted from its metrics (must be 0), optionally under cProfile (`--profile FILE`);
3. `raw`: the same rules with bare aiokafka: one consumer group on the four event topics,
   one transactional producer, per fetch: verify each record's signature (as the hub's
   intake: `streams.wire.signing.Verifier`), decode (the hub's codec), the origin check
   and `apply_event` against a dict, send the state changes (JSON), refusals and derived
   room events (signed as the hub signs its own) to topics of its own and the offsets,
   commit. No re-keying, so no second hop;
4. `restore`: `--customers` customer and `--rooms` room states (the hub's own JSON) are
   written to a state log and a fresh processor's restore of every partition is timed.

Both sides connect as `hotel-hub` (the raw side's group, transactional id and topics are
named under the app id, which the hub's grants cover), the publishers as their systems; the
run's prefix is granted first and its grants removed with its topics, as the operator.
Prints one JSON document per measurement; every topic of the run is deleted at the end.
Loopback only, with a watchdog.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import pstats
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import (
    HUB,
    OPERATOR,
    Progress,
    Rate,
    Stamp,
    check_loopback,
    forget_run_grants,
    grant_run,
)
from streams.core.kinds import POLICIES, EventKind, System
from streams.settings import HubSettings, get_settings
from streams.wire.registry_client import SchemaRegistryClient

log = logging.getLogger("bench.processor_profile")
KINDS = (EventKind.ROOM, EventKind.CUSTOMER, EventKind.RESERVATION, EventKind.CHECKIN_CHECKOUT)


def configure() -> HubSettings:
    run = uuid.uuid4().hex[:8]
    os.environ.update({"HOTELHUB_TOPIC_PREFIX": f"bench-proc-{run}.",
                       "HOTELHUB_APP_ID": f"bench-proc-{run}.hub", "HOTELHUB_IDENTITY": HUB})
    get_settings.cache_clear()
    settings = get_settings()
    check_loopback(settings)
    grant_run(settings)
    return settings


def refusals_so_far() -> int:
    from prometheus_client import REGISTRY

    return sum(int(sample.value) for metric in REGISTRY.collect()
               if metric.name == "hotelhub_refusals" for sample in metric.samples
               if sample.name == "hotelhub_refusals_total")


async def publish(documents: Sequence[tuple[System, str, dict[str, Any]]], *,
                  settings: HubSettings, registry: SchemaRegistryClient,
                  chunk: int = 500) -> tuple[set[str], float]:
    """In order; a chunk never holds one entity twice (its events keep their order)."""
    from streams.runners.publisher import HotelEventPublisher

    publishers = {system: HotelEventPublisher(system=system, registry=registry, settings=settings)
                  for system in {system for system, _, _ in documents}}
    for publisher in publishers.values():
        await publisher.start()
    ids: set[str] = set()
    started = time.perf_counter()
    try:
        batch: list[tuple[System, str, dict[str, Any]]] = []
        keys: set[str] = set()

        async def flush() -> None:
            published = await asyncio.gather(*(
                publishers[system].publish_document(doc) for system, _, doc in batch))
            ids.update(str(item.event.event_id) for item in published)

        for item in documents:
            if len(batch) >= chunk or item[1] in keys:
                await flush()
                batch, keys = [], set()
            batch.append(item)
            keys.add(item[1])
        if batch:
            await flush()
    finally:
        for publisher in publishers.values():
            await publisher.stop()
    return ids, time.perf_counter() - started


def backlog(source: str, events: int) -> list[tuple[System, str, dict[str, Any]]]:
    if source == "month":
        from bench import month

        return [(planned.system, planned.key, planned.document)
                for planned in month.generate()]
    from bench.state import mixed

    return [(system, str(doc["data"].get("reservation_id") or doc["data"].get("room_id")
                         or doc["data"].get("customer_id")), doc)
            for system, doc in mixed(events, "BENCH-MIX")]


async def run_hub(settings: HubSettings, ids: set[str], *, name: str, timeout_s: float,
                  profile: Path | None) -> dict[str, Any]:
    from streams.runners.hotel_processor import HotelProcessor
    from streams.wire.codec import ConfluentAvroCodec

    app = settings.model_copy(update={"app_id": f"{settings.app_id}-{name}"})
    progress = Progress(set(ids))
    refused = refusals_so_far()
    async with SchemaRegistryClient(settings.registry_url) as registry:
        processor = HotelProcessor(app, ConfluentAvroCodec(registry), settings.rules())
        processor.add_sink(lambda event: progress.saw(str(event.event_id)))
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        await processor.start()
        while len(processor._producers) < app.topic_partitions:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        progress.first_at = Stamp.now()  # partitions assigned and restored: the clock runs
        if profiler:
            profiler.enable()
        try:
            await asyncio.wait_for(progress.done.wait(), timeout=timeout_s)
        finally:
            if profiler:
                profiler.disable()
            await processor.stop()
    if profiler and profile:
        profiler.dump_stats(str(profile))
        stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(45)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
    assert progress.first_at is not None and progress.done_at is not None
    rate = Rate.between(progress.processed, progress.first_at, progress.done_at)
    return {"side": "hub", "events": len(ids), "seconds": round(rate.seconds, 2),
            "events_per_s": round(len(ids) / rate.seconds),
            "cpu_per_wall": round(rate.cpu_per_wall, 2),
            "start_until_assigned_s": round(progress.first_at.wall_s - started, 2),
            "refusals": refusals_so_far() - refused,
            "failure": repr(processor.failure) if processor.failure else None}


async def run_raw(settings: HubSettings, ids: set[str], *, name: str, timeout_s: float
                  ) -> dict[str, Any]:
    """Same rules, bare aiokafka, one transaction per fetch, no re-keying."""
    from streams.core.models import record_key
    from streams.core.rules import Principal
    from streams.core.step import apply_event, refuse_unverified
    from streams.runners.effects import DERIVED_BY
    from streams.wire.cloudevents import headers_for
    from streams.wire.codec import ConfluentAvroCodec
    from streams.wire.signing import HUB_SET, Signer, Verifier

    group = f"{settings.app_id}-{name}"  # under the app id: the hub's grants cover it
    verifier, signer = Verifier.of(settings), Signer.of(settings)
    room_topic = POLICIES[EventKind.ROOM].topic
    state_out, other_out = f"{group}.state", f"{group}.out"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(state_out, settings.topic_partitions, 1),
                                   NewTopic(other_out, settings.topic_partitions, 1)])
    finally:
        await admin.close()
    sources = {settings.topic(POLICIES[kind].topic): kind for kind in KINDS}
    rules = settings.rules()
    progress = Progress(set(ids))
    refused = 0
    states: dict[tuple[str, bytes], Any] = {}
    async with SchemaRegistryClient(settings.registry_url) as registry:
        codec = ConfluentAvroCodec(registry)
        await codec.ensure_registered()
        consumer = AIOKafkaConsumer(*sources, bootstrap_servers=settings.bootstrap_servers,
                                              **settings.kafka_auth(),
                                    group_id=group, isolation_level="read_committed",
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=4 * 1024 * 1024)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                    **settings.kafka_auth(),
                                    transactional_id=group, enable_idempotence=True,
                                    acks="all", linger_ms=5)
        await consumer.start()
        await producer.start()

        async def loop() -> None:
            nonlocal refused
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                if not batches:
                    continue
                if progress.first_at is None:
                    progress.first_at = Stamp.now()
                records = sorted((r for rs in batches.values() for r in rs),
                                 key=lambda r: r.timestamp)
                seen: list[str] = []
                async with producer.transaction():
                    futures = []
                    for record in records:
                        # Verified where it enters, as the hub's intake; the hub's own
                        # derived room events are passed over.
                        headers = [(n, v) for n, v in record.headers or () if n not in HUB_SET]
                        verified = None if verifier is None else verifier.verify(
                            POLICIES[sources[record.topic]].topic, record.key, record.value,
                            headers)
                        if any(n == DERIVED_BY for n, _ in headers) and (
                                verified is None or verified.identity == HUB):
                            continue
                        event = await codec.decode(sources[record.topic], record.value or b"")
                        principal = (Principal(event.updated_by_system) if verified is None
                                     else Principal(verified.identity, verified.problem))
                        step = (refuse_unverified(event, principal)
                                or apply_event(event, lambda t, k: states.get((t, k)), rules))
                        states.update(step.changes)
                        for (tag, key), state in step.changes.items():
                            futures.append(await producer.send(
                                state_out, state.model_dump_json().encode(),
                                key=tag.encode() + b"|" + key, partition=0))
                        for refusal in step.refusals:
                            refused += 1
                            futures.append(await producer.send(other_out, codec.encode(refusal)))
                        for room_event in step.room_events:
                            key, value = record_key(room_event), codec.encode(room_event)
                            derived = [*headers_for(room_event), (DERIVED_BY, group.encode())]
                            if signer is not None:
                                derived = signer.sign(room_topic, key, value, derived)
                            futures.append(await producer.send(other_out, value, key=key,
                                                               headers=derived))
                        seen.append(str(event.event_id))
                    await asyncio.gather(*futures)
                    await producer.send_offsets_to_transaction(
                        {tp: rs[-1].offset + 1 for tp, rs in batches.items()}, group)
                for event_id in seen:
                    progress.saw(event_id)

        task = asyncio.create_task(loop())
        try:
            await asyncio.wait_for(progress.done.wait(), timeout=timeout_s)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await producer.stop()
            await consumer.stop()
    assert progress.first_at is not None and progress.done_at is not None
    rate = Rate.between(progress.processed, progress.first_at, progress.done_at)
    return {"side": "raw", "events": len(ids), "seconds": round(rate.seconds, 2),
            "events_per_s": round(len(ids) / rate.seconds),
            "cpu_per_wall": round(rate.cpu_per_wall, 2), "refusals": refused}


def state_records(customers: int, rooms: int) -> list[tuple[bytes, bytes]]:
    """The hub's own state JSON of one customer and one room, repeated under other ids."""
    from bench.state import customer_doc, room_doc
    from streams.core.documents import build_event
    from streams.core.rules import RuleSettings
    from streams.core.step import apply_event
    from streams.runners.effects import state_key

    def one(system: System, doc: dict[str, Any]) -> dict[tuple[str, bytes], Any]:
        event = build_event(doc, publisher=system, default_hotel_id="BENCH-FILL")
        return apply_event(event, lambda t, k: None, RuleSettings()).changes

    out: list[tuple[bytes, bytes]] = []
    for (tag, key), state in one(*customer_doc("BENCH-FILL", 0)).items():
        key_text, value = state_key(tag, key).decode(), state.model_dump_json()
        for i in range(customers):
            marker = f"C{i:06d}"
            out.append((key_text.replace("C000000", marker).encode(),
                        value.replace("C000000", marker).encode()))
    for (tag, key), state in one(*room_doc("BENCH-FILL", 0)).items():
        if tag != "room":
            continue
        key_text, value = state_key(tag, key).decode(), state.model_dump_json()
        for i in range(rooms):
            marker = f"RM{i:05d}"
            out.append((key_text.replace("RM00000", marker).encode(),
                        value.replace("RM00000", marker).encode()))
    return out


async def run_restore(settings: HubSettings, *, customers: int, rooms: int) -> dict[str, Any]:
    from streams.runners.hotel_processor import HotelProcessor
    from streams.wire.codec import ConfluentAvroCodec
    from streams.wire.partitioning import hotel_partition
    from streams.wire.topics import TopicSpec

    try:  # the topic helpers' home moves (streams.wire.topics -> streams.runners.admin)
        from streams.runners.admin import ensure_topics
        from streams.wire.topics import state_topic
    except ImportError:
        from streams.runners.effects import state_topic  # type: ignore[attr-defined,no-redef]
        from streams.wire.topics import ensure_topics  # type: ignore[attr-defined,no-redef]

    app = settings.model_copy(update={"app_id": f"{settings.app_id}-restore"})
    topic = state_topic(app)
    await ensure_topics(app, [TopicSpec(topic, app.topic_partitions,
                                        {"cleanup.policy": "compact"})])
    partition = hotel_partition("BENCH-FILL", app.topic_partitions)
    records = state_records(customers, rooms)
    producer = AIOKafkaProducer(bootstrap_servers=app.bootstrap_servers, acks="all",
                                **app.kafka_auth(),
                                enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        for start in range(0, len(records), 5000):
            batch = [await producer.send(topic, value, key=key, partition=partition)
                     for key, value in records[start:start + 5000]]
            await asyncio.gather(*batch)
    finally:
        await producer.stop()
    async with SchemaRegistryClient(settings.registry_url) as registry:
        processor = HotelProcessor(app, ConfluentAvroCodec(registry), settings.rules())
        started = time.perf_counter()
        sizes = [len(await processor._restore(p)) for p in range(app.topic_partitions)]
        seconds = time.perf_counter() - started
    return {"side": "restore", "states_written": len(records), "states_restored": sum(sizes),
            "seconds": round(seconds, 2)}


async def drop_topics(settings: HubSettings) -> None:
    """The run's topics, then its grants, as the operator (nobody else may delete topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                **settings.as_identity(OPERATOR).kafka_auth())
    await admin.start()
    try:
        ours = [name for name in await admin.list_topics()
                if name.startswith(settings.topic_prefix)]
        if ours and settings.topic_prefix.startswith("bench-proc-"):
            await admin.delete_topics(ours)
    finally:
        await admin.close()
        await asyncio.to_thread(forget_run_grants, settings)


async def run(options: argparse.Namespace) -> list[dict[str, Any]]:
    from streams.runners.admin import ensure_topics

    settings = configure()
    results: list[dict[str, Any]] = []
    try:
        await ensure_topics(settings)
        if "restore" in options.sides:
            results.append(await run_restore(settings, customers=options.customers,
                                             rooms=options.rooms))
            print(json.dumps(results[-1]), flush=True)
        sides = [side for side in options.sides if side != "restore"]
        if not sides:
            return results
        async with SchemaRegistryClient(settings.registry_url) as registry:
            ids, publish_s = await publish(backlog(options.source, options.events),
                                           settings=settings, registry=registry)
        print(json.dumps({"published": len(ids), "publish_s": round(publish_s, 1)}), flush=True)
        for index, side in enumerate(sides):
            name = f"{side}{index}"
            if side == "hub":
                result = await run_hub(settings, ids, name=name, timeout_s=options.timeout_s,
                                       profile=options.profile)
            else:
                result = await run_raw(settings, ids, name=name, timeout_s=options.timeout_s)
            result["source"] = options.source
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        with contextlib.suppress(Exception):
            await drop_topics(settings)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from bench.common import watchdog

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", choices=("mixed", "month"), default="mixed")
    parser.add_argument("--events", type=int, default=20_000, help="mixed stream size")
    parser.add_argument("--sides", nargs="+", default=["hub", "raw"],
                        choices=("hub", "raw", "restore"), help="in this order")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=5_000)
    parser.add_argument("--profile", type=Path, help="cProfile the hub side into this file")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    watchdog(options.timeout_s * 3 + 120)
    for result in asyncio.run(run(options)):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
