"""Offline recovery: from the broker answering again to the last of 10,000 buffered events
committed in Kafka (issue 11: the design says < 30 s, our goal < 3 s).

Both sides run in this process, against a Kafka node and registry of the benchmark's own
(`tests.support.private_hub`, stopped and started here), one after the other in each run:

* client: a `HubClient` (hotel-pms, Kafka transport) accepts `--events` room status changes
  while the node is stopped (each validated and committed to its SQLite outbox, flagged
  created_offline). The node is started (in a thread, so the client's loop runs on); the
  clock starts when the node answers a Metadata request, and stops when the client's outbox
  is empty, i.e. its last transaction is committed. It noticed the node by itself (backoff
  up to `client_retry_max_s`, 1 s), started its transactional producer, read its sync
  checkpoint and sent batches of `client_batch` (1,000) events, each batch and its
  checkpoint in one transaction.
* floor: the same events built before the outage (as the client builds them when it
  accepts them) and held in memory: no outbox to read, nothing to notice. When the node
  answers, a transactional `HotelEventPublisher` starts at once and sends them with
  `publish_atomically` in the same batches, each stamped `synced_at` (the same publisher
  check, Avro, signatures, acks=all, transactions, the same checkpoint record per batch).
  What the client does more: read its outbox and validate each stored event against its
  model, notice the node, read its checkpoint, and mark each round in SQLite.

Then every event of both sides is counted in the topic (read_committed): a run that finds
one missing or doubled is unfair and exits 1. Median of `--runs` (3). Run with
`python -m bench.offline_sync`.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import base_parser, main_loop, report
from streams.client.checkpoints import checkpoint
from streams.client.client import HubClient
from streams.client.transports import sync_stamp, transactional_id
from streams.core.documents import build_event
from streams.core.kinds import POLICIES, EventKind, System, outbox_topic
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.eos import read_topic
from tests.support.events import status_change
from tests.support.private_hub import PrivateHub, private_hub

ROOMS = 1200
"""A large hotel's rooms: the events spread over them as a day's housekeeping would."""


def room_documents(count: int, tag: str) -> list[dict[str, Any]]:
    return [status_change(index, rooms=ROOMS, prefix=f"RM-{tag}") for index in range(count)]


async def start_broker(hub: PrivateHub) -> float:
    """Start the node in a thread (the loop runs on); the monotonic time it answered."""
    await asyncio.to_thread(hub.start_broker)
    return time.monotonic()


async def client_side(hub: PrivateHub, directory: Path, events: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    hub.stop_broker()
    client = HubClient(System.HOTEL_PMS, settings=hub.settings, directory=directory / tag,
                       client_id=f"bench-{tag}", subscribe=False)
    await client.start()
    assert not client.online
    began = time.monotonic()
    ids = [client.publish(EventKind.ROOM, str(doc["action"]), doc["data"]).event_id
           for doc in room_documents(events, tag)]
    accepted_s = time.monotonic() - began
    answered = await start_broker(hub)
    online_at: float | None = None
    while client.outbox.counts().pending:
        if online_at is None and client.online:
            online_at = time.monotonic()
        await asyncio.sleep(0.005)
    done = time.monotonic()
    await client.stop()
    return {"ids": ids, "recovery_s": done - answered, "accept_per_s": events / accepted_s,
            "noticed_s": (online_at or done) - answered}


async def floor_side(hub: PrivateHub, events: int, batch: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    settings = hub.settings
    # Built before the outage, as the client builds at accept: policy, limits, enrichment.
    built = [build_event(document, publisher=System.HOTEL_PMS,
                         default_hotel_id=settings.default_hotel_id, limits=settings.limits())
             for document in room_documents(events, tag)]
    hub.stop_broker()
    answered = await start_broker(hub)
    async with SchemaRegistryClient.from_settings(settings) as registry:
        publisher = HotelEventPublisher(
            system=System.HOTEL_PMS, registry=registry, settings=settings,
            transactional_id=transactional_id(System.HOTEL_PMS.value, f"floor-{tag}"))
        await publisher.start()
        started = time.monotonic()
        topic = settings.topic(outbox_topic(System.HOTEL_PMS.value))
        ids: list[str] = []
        try:
            for start in range(0, events, batch):
                now = sync_stamp()
                chunk = [event.model_copy(update={"synced_at": now})
                         for event in built[start:start + batch]]
                marker = checkpoint(f"floor-{tag}", start + len(chunk)).record(topic)
                outcomes = await publisher.publish_atomically(chunk, also=[marker])
                ids += [str(outcome.event.event_id) for outcome in outcomes
                        if outcome.published and outcome.event]
        finally:
            done = time.monotonic()
            await publisher.stop()
    return {"ids": ids, "recovery_s": done - answered, "noticed_s": started - answered}


async def run(options: Any) -> int:
    base = HubSettings().model_copy(update={
        "topic_prefix": f"bench-offline-{uuid.uuid4().hex[:8]}.", "identity": "operator"})
    results: dict[str, list[dict[str, Any]]] = {"client": [], "floor": []}
    unfair = False
    with tempfile.TemporaryDirectory(prefix="offline-sync-") as tmp, \
            private_hub(base, Path(tmp)) as hub:
        topic = hub.settings.topic(POLICIES[EventKind.ROOM].topic)
        for number in range(1, options.runs + 1):
            client = await client_side(hub, Path(tmp), options.events)
            floor = await floor_side(hub, options.events, hub.settings.client_batch)
            counts = Counter(dict(record.headers)["ce_id"].decode()
                             for record in await read_topic(hub.settings, topic, timeout_s=120))
            for name, side in (("client", client), ("floor", floor)):
                wrong = [event_id for event_id in side["ids"] if counts[event_id] != 1]
                if wrong or len(side["ids"]) != options.events:
                    print(f"run {number} {name}: {len(side['ids'])} sent, {len(wrong)} not in "
                          "Kafka exactly once: unfair", file=sys.stderr)
                    unfair = True
                side.pop("ids")
                results[name].append(side)
            print(f"run {number}: client {client['recovery_s']:.2f} s (connected after "
                  f"{client['noticed_s']:.2f} s), floor {floor['recovery_s']:.2f} s (connected "
                  f"after {floor['noticed_s']:.2f} s)")

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in results[name])

    table = "\n".join([
        f"| side ({options.events:,} events, median of {options.runs}) | broker answering -> "
        "last event committed | of which until connected (producer started) |",
        "|---|---:|---:|",
        f"| client: SQLite outbox, noticed by itself, checkpointed transactions | "
        f"{median('client', 'recovery_s'):.2f} s | {median('client', 'noticed_s'):.2f} s |",
        f"| floor: the same events built beforehand, in memory, transactions started at once | "
        f"{median('floor', 'recovery_s'):.2f} s | {median('floor', 'noticed_s'):.2f} s |",
        f"\naccepted offline: {median('client', 'accept_per_s'):,.0f} events/s "
        "(validated, committed to the outbox with synchronous=FULL, cached)",
    ])
    report("offline_sync", table, {"events": options.events, "runs": options.runs,
                                   "client_batch": base.client_batch,
                                   "client_retry_max_s": base.client_retry_max_s},
           {"runs": results}, options.output)
    return 1 if unfair else 0


def main() -> None:
    parser = base_parser(__doc__, events=10_000, timeout_s=900)
    options = parser.parse_args()
    sys.exit(main_loop(lambda: run(options), timeout_s=options.timeout_s))


if __name__ == "__main__":
    main()
