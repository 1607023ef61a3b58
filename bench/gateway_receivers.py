"""The receiving sides of `bench.gateway`, in a process of their own.

`bench.gateway` starts this module (`python -m bench.gateway_receivers --gateway-url URL
--timeout-s S`) once per run, with the run's `HOTELHUB_*` settings in its environment, so the
publisher's event loop never delays a receive stamp. Here, on uvloop:

* the WebSocket client (`hotel-member`, `room.*`) and the floor (a bare aiokafka consumer +
  codec decode + JSON, what the gateway does per record minus the WebSocket hop) read the same
  records side by side, like with like;
* then a webhook receiver (`tests.support.gateway.Receiver`: every request verified with
  `standardwebhooks`) for an endpoint `hotel-member` registers (`POST /webhooks`).

Every receive is stamped with `time.time()`, the clock the publisher stamps its hand-over with
(same host). Commands come as JSON lines on stdin, one answer per command as a JSON line on
stdout (anything else this process prints goes to stderr):

* `{"do": "subscribe"}`: the floor positioned at the end and the WebSocket subscribed;
* `{"do": "expect", "ids": [...]}`: the ids the next `wait` waits for, on every open side
  (sent before publishing, so no parsing competes with the stamps);
* `{"do": "wait", "timeout_s": S}`: until every expected id arrived on every open side, or S;
* `{"do": "unsubscribe"}`: both sides closed; answers their arrivals and the controls;
* `{"do": "hook"}`: the receiver started and the endpoint registered;
* `{"do": "unhook"}`: the receiver stopped; answers its arrivals, bad signatures and calls;
* `{"do": "exit"}`.

Arrivals are `{"at": {event id: first receive time}, "duplicates": {event id: extra copies}}`.
A failure answers `{"error": "..."}`. End of stdin (the benchmark gone) ends the process, and
so does the watchdog of `bench.common.main_loop` after `--timeout-s` + 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import REPO_ROOT, Deadline, cancel_quietly, check_loopback, main_loop
from streams.core.kinds import POLICIES, REFUSAL_TOPIC, EventKind, System
from streams.gateway.feed import FEED_FETCH
from streams.settings import HubSettings, get_settings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.gateway import Receiver, RunningGateway, Subscription

MEMBER = System.HOTEL_MEMBER.value
PATTERNS = ["room.*"]
LINE_LIMIT = 1 << 26
"""Bytes a command or answer line may take (a run's ids, its arrivals: a few MB at most)."""
HOOK_POLL_S = 0.02
"""How often the receiver's requests are taken into its arrivals (its stamps are its own)."""


class Arrivals:
    """First arrival time of each event id, duplicates counted per id; waits in O(1) per
    arrival."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.duplicates: dict[str, int] = {}
        self.controls: list[dict[str, Any]] = []
        self._missing: set[str] = set()
        self._all_in = asyncio.Event()
        self._all_in.set()

    def saw(self, event_id: str, at: float) -> None:
        if event_id in self.at:
            self.duplicates[event_id] = self.duplicates.get(event_id, 0) + 1
            return
        self.at[event_id] = at
        if self._missing:
            self._missing.discard(event_id)
            if not self._missing:
                self._all_in.set()

    def expect(self, ids: Sequence[str]) -> None:
        """The ids `wait` waits for (those not arrived already)."""
        self._missing = {event_id for event_id in ids if event_id not in self.at}
        if self._missing:
            self._all_in.clear()
        else:
            self._all_in.set()

    async def wait(self, timeout_s: float) -> int:
        """Until every expected id arrived, or `timeout_s`; returns how many are missing."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._all_in.wait()
        return len(self._missing)

    async def wait_for(self, ids: Sequence[str], timeout_s: float) -> int:
        self.expect(ids)
        return await self.wait(timeout_s)

    def dump(self) -> dict[str, Any]:
        return {"at": self.at, "duplicates": self.duplicates}


async def read_socket(subscription: Subscription, arrivals: Arrivals) -> None:
    """Stamp each event as its frame is handed to us, before parsing it."""
    while True:
        text = await subscription.socket.recv()
        at = time.time()
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
    try:
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await asyncio.wait_for(consumer.seek_to_end(*partitions), settings.connect_timeout_s)
        for tp in partitions:  # resolve the positions now, not at the first fetch
            await asyncio.wait_for(consumer.position(tp), settings.connect_timeout_s)
    except BaseException:
        await consumer.stop()
        raise
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
            arrivals.saw(str(event.event_id), time.time())


async def take_hooks(hooks: Receiver, arrivals: Arrivals) -> None:
    """The receiver's verified requests into `arrivals`, with the receiver's own stamps."""
    seen = 0
    while True:
        for item in hooks.received[seen:]:
            arrivals.saw(item.webhook_id, item.at)
        seen = len(hooks.received)
        await asyncio.sleep(HOOK_POLL_S)


class Receivers:
    """The open sides, each with its arrivals and the task that feeds them."""

    def __init__(self, settings: HubSettings, gateway: RunningGateway,
                 registry: SchemaRegistryClient, deadline: Deadline) -> None:
        self.settings = settings
        self.gateway = gateway
        self.registry = registry
        self.deadline = deadline
        self.sides: dict[str, Arrivals] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stack = contextlib.AsyncExitStack()
        self.hooks: Receiver | None = None

    def check(self) -> None:
        """A side whose task ended has failed: say why."""
        for name, task in self.tasks.items():
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise RuntimeError(f"the {name} side stopped: {error!r}")

    async def close_sides(self) -> None:
        for task in self.tasks.values():
            await cancel_quietly(task)
        self.tasks.clear()
        await self.stack.aclose()
        self.stack = contextlib.AsyncExitStack()

    async def subscribe(self) -> dict[str, Any]:
        if self.sides:
            raise RuntimeError(f"sides already open: {sorted(self.sides)}")
        kinds = member_topics(self.settings)
        consumer = await floor_consumer(self.settings, list(kinds))
        self.stack.push_async_callback(consumer.stop)
        subscription = await self.stack.enter_async_context(
            self.gateway.subscribe(MEMBER, PATTERNS))
        if subscription.first.get("control") != "subscribed":
            raise RuntimeError(f"the gateway refused the subscription: {subscription.first}")
        self.sides = {"websocket": Arrivals(), "floor": Arrivals()}
        codec = ConfluentAvroCodec(self.registry)
        self.tasks = {
            "websocket": asyncio.create_task(read_socket(subscription, self.sides["websocket"])),
            "floor": asyncio.create_task(read_floor(consumer, codec, kinds,
                                                    self.sides["floor"])),
        }
        return {"first": subscription.first}

    async def unsubscribe(self) -> dict[str, Any]:
        self.check()
        await self.close_sides()
        sides, self.sides = self.sides, {}
        return {"sides": {name: side.dump() for name, side in sides.items()},
                "controls": sides["websocket"].controls}

    async def hook(self) -> dict[str, Any]:
        if self.sides:
            raise RuntimeError(f"sides already open: {sorted(self.sides)}")
        hooks = Receiver()
        await hooks.start()
        self.stack.push_async_callback(hooks.stop)
        async with self.gateway.client(MEMBER) as client:
            response = await client.post("/webhooks", json={"url": hooks.url,
                                                            "patterns": PATTERNS})
        if response.status_code != 201:
            raise RuntimeError(f"POST /webhooks: {response.status_code} {response.text}")
        hooks.secret = response.json()["secret"]
        self.hooks = hooks
        self.sides = {"webhook": Arrivals()}
        self.tasks = {"webhook": asyncio.create_task(take_hooks(hooks, self.sides["webhook"]))}
        return {"url": hooks.url}

    async def unhook(self) -> dict[str, Any]:
        self.check()
        hooks = self.hooks
        assert hooks is not None, "no webhook receiver"
        await self.close_sides()
        arrivals = Arrivals()  # every verified request, including any after the last take
        for item in hooks.received:
            arrivals.saw(item.webhook_id, item.at)
        self.sides, self.hooks = {}, None
        return {"sides": {"webhook": arrivals.dump()}, "bad signatures": hooks.bad,
                "receiver calls": hooks.calls}

    def expect(self, ids: Sequence[str]) -> dict[str, Any]:
        if not self.sides:
            raise RuntimeError("no side open")
        for side in self.sides.values():
            side.expect(ids)
        return {}

    async def wait(self, timeout_s: float) -> dict[str, Any]:
        timeout_s = min(timeout_s, self.deadline.remaining_s())
        end = time.monotonic() + timeout_s
        missing = {}
        for name, side in self.sides.items():
            missing[name] = await side.wait(max(0.0, end - time.monotonic()))
        self.check()
        return {"missing": missing}


async def serve(options: argparse.Namespace) -> None:
    deadline = Deadline(options.timeout_s)
    protocol: TextIO = sys.stdout
    sys.stdout = sys.stderr  # only answers on the protocol stream

    def answer(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message, separators=(",", ":")) + "\n")
        protocol.flush()

    get_settings.cache_clear()
    settings = HubSettings()
    check_loopback(settings)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    async with SchemaRegistryClient.from_settings(settings) as registry:
        receivers = Receivers(settings, RunningGateway(None, options.gateway_url, settings),
                              registry, deadline)
        try:
            while True:
                async with asyncio.timeout(deadline.remaining_s()):
                    line = await commands.readline()
                if not line:
                    return  # the benchmark is gone
                command = json.loads(line)
                try:
                    async with asyncio.timeout(deadline.remaining_s()):
                        match command["do"]:
                            case "subscribe":
                                reply = await receivers.subscribe()
                            case "expect":
                                reply = receivers.expect(command["ids"])
                            case "wait":
                                reply = await receivers.wait(float(command["timeout_s"]))
                            case "unsubscribe":
                                reply = await receivers.unsubscribe()
                            case "hook":
                                reply = await receivers.hook()
                            case "unhook":
                                reply = await receivers.unhook()
                            case "exit":
                                answer({"ok": "exit"})
                                return
                            case other:
                                raise ValueError(f"unknown command {other!r}")
                except Exception as exc:
                    answer({"error": f"{command['do']}: {exc!r}"})
                    continue
                answer({"ok": command["do"], **reply})
        finally:
            await receivers.close_sides()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gateway-url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--timeout-s", type=float, required=True,
                        help="budget of this process (seconds)")
    options = parser.parse_args(argv)
    if urlsplit(options.gateway_url).hostname != "127.0.0.1":
        parser.error("--gateway-url must be on 127.0.0.1 (loopback only)")
    main_loop(lambda: serve(options), timeout_s=options.timeout_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
