"""Consume: the hub's analytics runner against a bare aiokafka loop, decode + validate each.

Each run publishes `--events` analytics reports to the run's own topics (not timed), then
both sides read those same records from the beginning, in an order that alternates:

- hub: the hub's worker in this process (`streams.worker.run.running_hub`); what its
  analytics install (`agents.analytics`) builds, the idempotent runner
  (`streams.runners.idempotent`: aiokafka `getmany` in a consumer group of its own,
  read_committed, a commit per batch), decodes the records with the hub's codec
  (Confluent header, writer schema by id, fastavro, pydantic), counts them in its metrics
  and hands each event to a sink;
- raw: `AIOKafkaConsumer.getmany` (read_committed, as the hub's consumers) checking the
  Confluent header, `fastavro.schemaless_reader` (schema parsed once) and the same pydantic
  model's `model_validate`.

Each side is timed from its first decoded record to the record completing the set; the
app's start-up and group join are reported apart. Run with `python -m bench.consume`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fastavro
import mode.loop
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import (
    AgentSink,
    Deadline,
    Progress,
    Rate,
    Side,
    base_parser,
    check_options,
    documents,
    drop_run_topics,
    environment,
    main_loop,
    rate_table,
    refusals_and_dead_letters,
    report,
    run_settings,
    running_hub,
    side_json,
)
from schemas import schema_text
from streams.core.kinds import POLICIES, EventKind
from streams.core.models import EVENT_MODELS
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient

KIND = EventKind.ANALYTICS
SIDES = {
    "hub": "the hub's worker in process: analytics runner (aiokafka getmany, group commit "
           "per batch), the codec's decode (header, writer schema by id, fastavro, pydantic), "
           "metrics, sink",
    "raw": "AIOKafkaConsumer.getmany (read_committed), header check, fastavro."
           "schemaless_reader, the same pydantic model_validate",
}


async def publish(settings: HubSettings, run: int, count: int) -> tuple[set[str], int]:
    """The run's records (not timed); returns their event ids and the schema id."""
    system, docs = documents(KIND, count, side=f"REPORT-{run}")
    async with SchemaRegistryClient(settings.registry_url) as registry:
        codec = ConfluentAvroCodec(registry)
        await codec.register(KIND)
        async with HotelEventPublisher(system=system, registry=registry,
                                       settings=settings) as pub:
            outcomes = [outcome for start in range(0, count, 1000)
                        for outcome in await pub.publish_many(docs[start:start + 1000])]
    problems = [outcome.problem for outcome in outcomes if not outcome.ok]
    if problems:
        raise SystemExit(f"publishing the bench records failed: {problems[:3]}")
    return {str(outcome.event.event_id) for outcome in outcomes if outcome.event}, \
        codec.schema_id(KIND)


async def raw_side(settings: HubSettings, wanted: set[str], schema_id: int,
                   deadline: Deadline) -> Rate:
    topic = settings.topic(POLICIES[KIND].topic)
    schema = fastavro.parse_schema(json.loads(schema_text(KIND)))
    header = struct.pack(">bI", 0, schema_id)
    model = EVENT_MODELS[KIND]
    progress = Progress(set(wanted))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth(),
                                client_id="hotelhub-bench-raw", group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    await asyncio.wait_for(consumer.start(), timeout=settings.connect_timeout_s)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(settings.topic_partitions)])
        await consumer.seek_to_beginning()
        async with asyncio.timeout(deadline.remaining_s()):
            while not progress.done.is_set():
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        value = record.value or b""
                        if value[:5] != header:
                            raise ValueError(f"unexpected header {value[:5]!r}")
                        event = model.model_validate(
                            fastavro.schemaless_reader(io.BytesIO(value[5:]), schema))
                        progress.saw(str(event.event_id))
    finally:
        await consumer.stop()
    return progress.rate()


async def hub_side(settings: HubSettings, wanted: set[str], deadline: Deadline
                   ) -> tuple[Rate, float]:
    """The rate, and the start-up until the first record (not in the rate)."""
    sink = AgentSink(Progress(set(wanted)))
    started = time.perf_counter()
    async with asyncio.timeout(deadline.remaining_s() + 30), running_hub(settings, [sink]):
        await asyncio.wait_for(sink.progress.done.wait(), timeout=deadline.remaining_s())
    assert sink.progress.first_at is not None
    return sink.progress.rate(), sink.progress.first_at.wall_s - started


async def one_run(number: int, options: argparse.Namespace, data_dir: Path,
                  sides: dict[str, Side], deadline: Deadline) -> dict[str, Any]:
    from streams.worker.run import prepare

    settings = run_settings("consume", number, data_dir)
    try:
        await prepare(settings)
        wanted, schema_id = await publish(settings, number, options.events)
        checks: dict[str, Any] = {"order": ["hub", "raw"] if number % 2 == 0 else ["raw", "hub"]}
        for name in checks["order"]:
            if name == "hub":
                rate, startup_s = await hub_side(settings, wanted, deadline)
                checks["hub start-up until the first record (s)"] = round(startup_s, 2)
            else:
                rate = await raw_side(settings, wanted, schema_id, deadline)
            sides[name].runs.append(rate)
            checks[f"{name} records"] = rate.events + 1
        checks.update(await refusals_and_dead_letters(settings))
        return checks
    finally:
        await drop_run_topics(settings)


async def run(options: argparse.Namespace) -> None:
    deadline = Deadline(options.timeout_s)
    sides = {name: Side(name, does) for name, does in SIDES.items()}
    checks = []
    with tempfile.TemporaryDirectory(prefix="hotelhub-bench-") as data_dir:
        for number in range(options.runs):
            checks.append(await one_run(number, options, Path(data_dir), sides, deadline))
            print(f"run {number + 1}: " + ", ".join(
                f"{side.name} {side.runs[-1].per_s:,.0f}/s" for side in sides.values())
                + f"; {checks[-1]}", flush=True)
    from streams.settings import get_settings

    env = environment(get_settings(), options)
    report("consume", rate_table(list(sides.values())), env,
           {"sides": {name: side_json(side) for name, side in sides.items()}, "checks": checks},
           options.output)
    unfair = [check for check in checks if check["refusals"] or check["dead letters"]]
    if unfair:
        raise SystemExit(f"unfair run (refusals or dead letters): {unfair}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__, events=20_000, timeout_s=600)
    options = parser.parse_args(argv)
    check_options(parser, options)
    # As `hotelhub worker` runs (`streams.worker.run.run_worker`): the loop of the thread
    # Faust runs its Kafka consumer in is made from the policy, so uvloop too.
    mode.loop.use("uvloop")
    main_loop(lambda: run(options), timeout_s=options.timeout_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
