"""Produce: the hub's publisher against a bare aiokafka producer doing the same work.

Three sides, each sending `--events` reservation documents of its own (distinct ids) to
the run's reservation topic, `--chunk` at a time, acks=all, idempotent, linger_ms=2:

- hub: `HotelEventPublisher.publish_many` (policy checks, enrichment, pydantic validation,
  limits, Avro with the Confluent header, CloudEvents headers, the record signature, one
  send future each);
- raw: the same documents enriched the same way, `model_validate`d with the hub's pydantic
  models, encoded with fastavro after the Confluent header, the same headers and keys,
  signed as the publisher signs (`streams.wire.signing.Signer`, one HMAC-SHA256 each),
  one `producer.send` future each, gathered per chunk;
- transport: the same producer sending records already encoded and signed (a ceiling).

Every side connects as the publishing system (the samples' `hotel-saas`), as the
publisher does: SCRAM-SHA-512, and the broker's ACLs let it write the reservation topic.

Run with `python -m bench.produce` (`--events 20000 --runs 3 --chunk 500`).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import struct
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import fastavro
from aiokafka import AIOKafkaProducer

from bench.common import (
    Rate,
    Side,
    Stamp,
    base_parser,
    check_options,
    chunks,
    documents,
    drop_run_topics,
    environment,
    main_loop,
    rate_table,
    records_in,
    report,
    run_settings,
    side_json,
)
from schemas import schema_text
from streams.core.kinds import POLICIES, EventKind, System
from streams.core.models import EVENT_MODELS
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from streams.wire.signing import Signer

KIND = EventKind.RESERVATION
SIDES = {
    "hub": "HotelEventPublisher.publish_many: policy checks, enrich, pydantic validate, limits, "
           "Avro (codec), CloudEvents headers, signed, one send future per record, awaited "
           "per chunk",
    "raw": "enrich, EVENT_MODELS[kind].model_validate, fastavro.schemaless_writer after the "
           "Confluent header, the same CloudEvents headers and key, signed (Signer), "
           "producer.send futures gathered per chunk",
    "transport": "the same producer sending records encoded and signed before the clock "
                 "starts (ceiling)",
}


def producer(settings: HubSettings, name: str) -> AIOKafkaProducer:
    """The publisher's producer settings, so only the per-event work differs; `settings` act
    as the publishing system (`settings.as_identity(system)`), as the publisher's do."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        **settings.kafka_auth(), client_id=f"hotelhub-bench-{name}",
        acks="all", enable_idempotence=True, linger_ms=2,
        request_timeout_ms=int(settings.publish_timeout_s * 1000))


class RawEncoder:
    """A bare client's validate + encode + sign: the hub's pydantic model, fastavro, and the
    record signature every producer adds (`streams.wire.signing`, as the README tells a
    producer of its own to do); no other hub code."""

    def __init__(self, settings: HubSettings, system: System, schema_id: int) -> None:
        policy = POLICIES[KIND]
        self.base_topic = policy.topic
        self.topic = settings.topic(policy.topic)
        # The system's own credential, as the publisher signs (None with security off).
        self.signer = Signer.of(settings.as_identity(system.value))
        self.model = EVENT_MODELS[KIND]
        self.schema = fastavro.parse_schema(json.loads(schema_text(KIND)))
        self.header = struct.pack(">bI", 0, schema_id)
        self.system, self.hotel = system.value, settings.default_hotel_id
        self.fixed = {"priority": policy.priority.value, "sync_mode": policy.sync_mode.value,
                      "delivery_guarantee": policy.delivery_guarantee.value,
                      "targets": [target.value for target in policy.targets]}

    def record(self, document: Mapping[str, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        event = self.model.model_validate({
            **document, **self.fixed, "event_id": uuid4(),
            "hotel_id": document.get("hotel_id") or self.hotel,
            "origin_system": document.get("origin_system") or self.system,
            "updated_by_system": self.system, "occurred_at": now, "synced_at": now})
        buffer = io.BytesIO()
        buffer.write(self.header)
        fastavro.schemaless_writer(buffer, self.schema, event.model_dump(mode="python"))
        entity = event.data.reservation_id  # type: ignore[union-attr]
        headers = {
            "ce_specversion": "1.0", "ce_id": str(event.event_id),
            "ce_type": f"hotel.{event.type}.{event.action}",
            "ce_source": f"/{event.hotel_id}/{event.updated_by_system}", "ce_subject": entity,
            "ce_time": event.occurred_at.isoformat().replace("+00:00", "Z"),
            "content-type": "application/avro", "ce_hotelid": event.hotel_id,
            "ce_priority": event.priority, "ce_targets": ",".join(event.targets)}
        key, value = f"{event.hotel_id}:{entity}".encode(), buffer.getvalue()
        encoded = [(name, text.encode()) for name, text in headers.items()]
        if self.signer is not None:
            encoded = self.signer.sign(self.base_topic, key, value, encoded)
        return key, value, encoded


async def hub_side(docs: Sequence[dict[str, Any]], *, system: System,
                   registry: SchemaRegistryClient, settings: HubSettings, chunk: int
                   ) -> tuple[Rate, int]:
    async with HotelEventPublisher(system=system, registry=registry, settings=settings) as pub:
        failed = 0
        started = Stamp.now()
        for batch in chunks(docs, chunk):
            failed += sum(not outcome.ok for outcome in await pub.publish_many(batch))
        finished = Stamp.now()
    return Rate.between(len(docs), started, finished), failed


async def raw_side(docs: Sequence[dict[str, Any]], *, encoder: RawEncoder,
                   settings: HubSettings, chunk: int) -> Rate:
    """`settings` act as the publishing system."""
    client = producer(settings, "raw")
    await asyncio.wait_for(client.start(), timeout=settings.connect_timeout_s)
    try:
        started = Stamp.now()
        for batch in chunks(docs, chunk):
            futures = []
            for document in batch:
                key, value, headers = encoder.record(document)
                futures.append(await client.send(encoder.topic, value, key=key,
                                                  headers=headers))
            await asyncio.gather(*futures)
        return Rate.between(len(docs), started, Stamp.now())
    finally:
        await client.stop()


async def transport_side(records: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]]]],
                         *, settings: HubSettings, chunk: int) -> Rate:
    client = producer(settings, "transport")
    await asyncio.wait_for(client.start(), timeout=settings.connect_timeout_s)
    try:
        started = Stamp.now()
        for batch in chunks(records, chunk):
            futures = [await client.send(topic, value, key=key, headers=headers)
                       for topic, key, value, headers in batch]
            await asyncio.gather(*futures)
        return Rate.between(len(records), started, Stamp.now())
    finally:
        await client.stop()


async def one_run(run: int, options: argparse.Namespace, data_dir: Path,
                  sides: dict[str, Side]) -> dict[str, Any]:
    from streams.worker.run import prepare

    settings = run_settings("produce", run, data_dir)
    checks: dict[str, Any] = {}
    try:
        await prepare(settings)  # the hub's topics and contracts
        system, hub_docs = documents(KIND, options.events, side=f"HUB-{run}")
        _, raw_docs = documents(KIND, options.events, side=f"RAW-{run}")
        _, wire_docs = documents(KIND, options.events, side=f"WIRE-{run}")
        async with SchemaRegistryClient(settings.registry_url) as registry:
            codec = ConfluentAvroCodec(registry)
            await codec.register(KIND)
            encoder = RawEncoder(settings, system, codec.schema_id(KIND))
            # The raw and transport producers connect as the system the publisher acts as.
            as_system = settings.as_identity(system.value)
            encoded = [(encoder.topic, *encoder.record(doc)) for doc in wire_docs]
            order = ["hub", "raw", "transport"]
            order = order[run % 3:] + order[:run % 3]  # no side always goes first
            for name in order:
                if name == "hub":
                    rate, failed = await hub_side(hub_docs, system=system, registry=registry,
                                                  settings=settings, chunk=options.chunk)
                    checks["hub events not published"] = failed
                elif name == "raw":
                    rate = await raw_side(raw_docs, encoder=encoder, settings=as_system,
                                          chunk=options.chunk)
                else:
                    rate = await transport_side(encoded, settings=as_system,
                                                chunk=options.chunk)
                sides[name].runs.append(rate)
        checks["records on the topic"] = await records_in(settings, [encoder.topic])
        checks["records expected"] = 3 * options.events
        checks["order"] = order
        return checks
    finally:
        await drop_run_topics(settings)


async def run(options: argparse.Namespace) -> None:
    sides = {name: Side(name, does) for name, does in SIDES.items()}
    checks = []
    with tempfile.TemporaryDirectory(prefix="hotelhub-bench-") as data_dir:
        async with asyncio.timeout(options.timeout_s):
            for number in range(options.runs):
                checks.append(await one_run(number, options, Path(data_dir), sides))
                print(f"run {number + 1}: " + ", ".join(
                    f"{side.name} {side.runs[-1].per_s:,.0f}/s" for side in sides.values())
                    + f"; {checks[-1]}", flush=True)
        from streams.settings import get_settings

        env = environment(get_settings(), options)
    bad = [check for check in checks if check["hub events not published"]
           or check["records on the topic"] != check["records expected"]]
    report("produce", rate_table(list(sides.values())), env,
           {"sides": {name: side_json(side) for name, side in sides.items()}, "checks": checks},
           options.output)
    if bad:
        raise SystemExit(f"unfair run: {bad}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__, events=20_000, timeout_s=600)
    parser.add_argument("--chunk", type=int, default=500, help="sends in flight at once")
    options = parser.parse_args(argv)
    check_options(parser, options)
    main_loop(lambda: run(options), timeout_s=options.timeout_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
