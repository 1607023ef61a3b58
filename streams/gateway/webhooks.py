"""Webhook delivery: every event to every endpoint that wants it, once, in order per entity.

The gateway processes share the event topics' partitions through one consumer group, so an
event is dispatched by one process, not by each. Per endpoint, deliveries wait in lanes
(`webhook_lanes`): one entity's events always share a lane, so they arrive in order, and a
lane waits on its own retries only, so one slow endpoint never delays another.

Nothing is lost: a partition's offset is committed only up to the oldest event some
endpoint has not finished with (delivered, or written to the webhook dead-letter topic and
acknowledged there). A process that dies mid-delivery leaves those events to the next
owner of the partition, which delivers them again with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from streams.core.exceptions import CodecError, HubError
from streams.core.kinds import DELIVERY_LOG_TOPIC, WEBHOOK_DEADLETTER_TOPIC
from streams.core.models import DeliveryChannel, DeliveryLog, DeliveryStatus
from streams.gateway.book import EndpointBook
from streams.gateway.callers import Caller, Callers
from streams.gateway.deadletters import Attempt, DeadLetter, DeadReason, read_dead_letters
from streams.gateway.endpoints import Endpoint, EndpointStatus
from streams.gateway.feed import Feed
from streams.gateway.messages import CONTENT_TYPE, MessageReader, Outgoing
from streams.gateway.retries import RETRY_AFTER_STATUSES, RetryPolicy, retry_after_s
from streams.gateway.signatures import secret_key, signed_headers
from streams.ops.metrics import (
    gateway_deliveries_total,
    gateway_delivery_latency_seconds,
    gateway_webhook_dead_letters_total,
    gateway_webhook_pending,
    gateway_webhook_retries_total,
)
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.topics import webhook_group

log = logging.getLogger(__name__)

COMMIT_EVERY_S = 1.0
USER_AGENT = "hotelhub-gateway/1 (Standard Webhooks)"


@dataclass
class Delivery:
    """One event for one endpoint, with what was tried so far."""

    endpoint_id: str
    outgoing: Outgoing
    source: TopicPartition | None
    """Where it was read (None for a replay, which commits nothing)."""
    offset: int
    generation: int
    produced_at: float
    attempts: list[Attempt] = field(default_factory=list)


def _halted(endpoint: Endpoint) -> DeadReason | None:
    """Why nothing may be sent to `endpoint` now (its events go to dead letters), or None."""
    return {EndpointStatus.PAUSED: DeadReason.ENDPOINT_PAUSED,
            EndpointStatus.DISABLED: DeadReason.ENDPOINT_DISABLED}.get(endpoint.status)


class _Watermarks:
    """Per partition, the offsets some delivery still holds, to commit below the oldest."""

    def __init__(self) -> None:
        self.open: dict[TopicPartition, dict[int, int]] = {}
        self.generation: dict[TopicPartition, int] = {}
        self.read: dict[TopicPartition, int] = {}
        """Per partition, the offset after the last batch dispatched."""

    def hold(self, tp: TopicPartition, offset: int, count: int) -> None:
        held = self.open.setdefault(tp, {})
        held[offset] = held.get(offset, 0) + count

    def release(self, delivery: Delivery) -> None:
        tp = delivery.source
        if tp is None or self.generation.get(tp) != delivery.generation:
            return
        held = self.open.get(tp, {})
        left = held.get(delivery.offset, 0) - 1
        if left > 0:
            held[delivery.offset] = left
        else:
            held.pop(delivery.offset, None)

    def oldest(self, tp: TopicPartition) -> int | None:
        held = self.open.get(tp)
        return min(held) if held else None

    def reset(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.open.pop(tp, None)
            self.read.pop(tp, None)
            self.generation[tp] = self.generation.get(tp, 0) + 1

    def current(self, tp: TopicPartition, generation: int) -> bool:
        return self.generation.get(tp) == generation


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, dispatcher: WebhookDispatcher) -> None:
        self.dispatcher = dispatcher

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.dispatcher.commit()
        self.dispatcher.marks.reset(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.dispatcher.marks.reset(assigned)


class _Lanes:
    """One endpoint's lanes: queues, each drained by its own task, one attempt at a time."""

    def __init__(self, dispatcher: WebhookDispatcher, endpoint_id: str, count: int) -> None:
        self.queues: list[asyncio.Queue[Delivery]] = [asyncio.Queue() for _ in range(count)]
        self.tasks = [asyncio.create_task(dispatcher.drain(endpoint_id, queue),
                                          name=f"webhook lane {endpoint_id}/{n}")
                      for n, queue in enumerate(self.queues)]
        self.pending = 0
        self.gauge = gateway_webhook_pending.labels(endpoint=endpoint_id)

    def put(self, delivery: Delivery) -> None:
        lane = zlib.crc32(delivery.outgoing.entity.encode()) % len(self.queues)
        self.pending += 1
        self.gauge.set(self.pending)
        self.queues[lane].put_nowait(delivery)

    def finished(self) -> None:
        self.pending -= 1
        self.gauge.set(self.pending)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


class WebhookDispatcher:
    def __init__(self, settings: HubSettings, *, reader: MessageReader, book: EndpointBook,
                 callers: Callers, codec: ConfluentAvroCodec) -> None:
        self.settings, self.reader, self.book, self.callers = settings, reader, book, callers
        self.codec = codec
        self.policy = RetryPolicy.of(settings)
        self.marks = _Watermarks()
        self._lanes: dict[str, _Lanes] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._committed: dict[TopicPartition, int] = {}
        self.dead_letter_topic = settings.topic(WEBHOOK_DEADLETTER_TOPIC)
        self.delivery_log_topic = settings.topic(DELIVERY_LOG_TOPIC)
        self.started = False

    # -- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        auth = self.settings.kafka_auth()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, **auth, acks="all",
            enable_idempotence=True, linger_ms=5, client_id="hotelhub-gateway-webhooks")
        await self._producer.start()
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s),
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=self.settings.webhook_lanes,
                                           ttl_dns_cache=60),
            headers={"user-agent": USER_AGENT})
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, **auth,
            group_id=webhook_group(self.settings), enable_auto_commit=False,
            auto_offset_reset="latest", isolation_level="read_committed",
            client_id="hotelhub-gateway-webhooks", fetch_max_wait_ms=200)
        await self._consumer.start()
        self._consumer.subscribe(self.reader.topics.names, listener=_Rebalance(self))
        self.book.on_change(self._endpoint_changed)
        await self._join()
        self._tasks = [asyncio.create_task(self._consume(), name="webhook consume"),
                       asyncio.create_task(self._commit_often(), name="webhook commit")]
        self.started = True

    async def _join(self) -> None:
        """Join the group and fix where each partition starts before saying ready.

        A group new to the cluster starts at the end of each partition ("latest": endpoints
        registered now want what comes next). That position is committed at once, so an
        event published after the gateway said ready is delivered even if the gateway dies
        before its first commit.
        """
        consumer = self._consumer
        assert consumer is not None
        async with asyncio.timeout(max(60.0, self.settings.connect_timeout_s)):
            while not consumer.assignment():
                await self._read_batch(consumer, timeout_ms=200)
        fresh = {}
        for tp in consumer.assignment():
            if tp not in self.marks.read:
                self.marks.read[tp] = await consumer.position(tp)
            if await consumer.committed(tp) is None:
                fresh[tp] = self.marks.read[tp]
        if fresh:
            await consumer.commit(fresh)
            self._committed.update(fresh)

    async def stop(self) -> None:
        """Stop reading, commit what is finished, and abandon what is not (the next owner
        of each partition delivers it again)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for lanes in self._lanes.values():
            lanes.cancel()
        with contextlib.suppress(KafkaError):
            await self.commit()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._http is not None:
            await self._http.close()
        self.started = False

    def _endpoint_changed(self, endpoint_id: str, endpoint: Endpoint | None) -> None:
        if endpoint is None and endpoint_id in self._lanes:
            # Deleted: what waits is abandoned, and its offsets released.
            self._lanes.pop(endpoint_id).cancel()

    # -- reading -----------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                await self._read_batch(consumer, timeout_ms=1000)
            except (KafkaError, HubError):  # the broker or the registry is away: wait, go on
                log.exception("webhook consumer: reading failed; reading on")
                await asyncio.sleep(1)

    async def _read_batch(self, consumer: AIOKafkaConsumer, *, timeout_ms: int) -> None:
        """Dispatch one batch; each partition's read mark moves only once its records are
        held by their deliveries, so a commit never passes a record not yet dispatched."""
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=500)
        undone = {tp: records[0].offset for tp, records in batches.items() if records}
        for tp, records in batches.items():
            generation = self.marks.generation.get(tp, 0)
            for record in records:
                if record.value is not None:
                    try:
                        await self._dispatch(tp, generation, record.offset, record.key,
                                             record.value, record.headers, record.timestamp)
                    except BaseException:
                        # Read again from the first record not dispatched, here and in the
                        # partitions this batch did not reach, so none is skipped.
                        undone[tp] = record.offset
                        for left, offset in undone.items():
                            if left in consumer.assignment():
                                consumer.seek(left, offset)
                        raise
            undone.pop(tp, None)
            if self.marks.current(tp, generation):
                # The position, not the last offset + 1: it passes transaction markers too.
                self.marks.read[tp] = await consumer.position(tp)

    async def _dispatch(self, tp: TopicPartition, generation: int, offset: int,
                        key: bytes | None, value: bytes, headers: Any, timestamp_ms: int
                        ) -> None:
        routing = self.reader.routing(tp.topic, headers)
        endpoints = self._wanting(routing) if routing is not None else None
        if endpoints == []:
            return  # decided from the headers alone: nobody wants it, nothing to decode
        try:
            outgoing = await self.reader.outgoing(tp.topic, key, value, routing)
        except CodecError as exc:
            log.warning("webhooks: %s[%d]@%d not decodable, skipped: %s", tp.topic,
                        tp.partition, offset, exc)
            return
        if endpoints is None:  # a record without CloudEvents headers: routed once decoded
            endpoints = self._wanting(outgoing.routing)
            if not endpoints:
                return
        self.marks.hold(tp, offset, len(endpoints))
        for endpoint in endpoints:
            await self.enqueue(Delivery(endpoint.id, outgoing, tp, offset, generation,
                                        timestamp_ms / 1000))

    def _wanting(self, routing: Any) -> list[Endpoint]:
        found = []
        for endpoint in self.book.all():
            audience = self.audience(endpoint.system)
            if audience is not None and audience.admits(routing) and self.book.wants(
                    endpoint, routing.ce_type, critical=routing.critical):
                found.append(endpoint)
        return found

    def audience(self, system: str) -> Caller | None:
        identity = self.callers.identity(system)
        return None if identity is None else Caller(identity, system, None)

    async def enqueue(self, delivery: Delivery) -> None:
        """Queue a delivery on its endpoint's lane, or dead-letter it at once when the
        endpoint is paused or disabled, or has `webhook_max_pending` waiting already."""
        endpoint = self.book.get(delivery.endpoint_id)
        if endpoint is None:
            self.marks.release(delivery)
            return
        reason = _halted(endpoint)
        lanes = self._lanes.get(endpoint.id)
        if reason is None and lanes is not None and (
                lanes.pending >= self.settings.webhook_max_pending):
            reason = DeadReason.BACKLOG_FULL
        if reason is not None:
            await self._bury(endpoint, delivery, reason)
            self.marks.release(delivery)
            return
        if lanes is None:
            lanes = self._lanes[endpoint.id] = _Lanes(self, endpoint.id,
                                                      self.settings.webhook_lanes)
        lanes.put(delivery)

    # -- delivering --------------------------------------------------------------------

    async def drain(self, endpoint_id: str, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                if delivery.source is None or self.marks.current(delivery.source,
                                                                 delivery.generation):
                    await self._deliver(delivery)
                    self.marks.release(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # never lose a lane to one delivery's bug
                log.exception("webhook delivery to %s failed unexpectedly; it stays "
                              "uncommitted and is delivered again after a restart",
                              endpoint_id)
            finally:
                lanes = self._lanes.get(endpoint_id)
                if lanes is not None:
                    lanes.finished()

    async def _deliver(self, delivery: Delivery) -> None:
        """Attempt until a 2xx, a 410, a pause, or the schedule's end."""
        while True:
            endpoint = self.book.get(delivery.endpoint_id)
            if endpoint is None:
                return  # deleted while it waited: nobody to deliver to
            halted = _halted(endpoint)
            if halted is not None:
                await self._bury(endpoint, delivery, halted)
                return
            attempt, retry_after = await self._attempt(endpoint, delivery)
            delivery.attempts.append(attempt)
            if attempt.outcome == "success":
                await self._log(endpoint, delivery, DeliveryStatus.SUCCESS, attempt)
                gateway_deliveries_total.labels(channel="webhook", system=endpoint.system,
                                                outcome="success").inc()
                gateway_delivery_latency_seconds.labels(channel="webhook").observe(
                    max(time.time() - delivery.produced_at, 0.0))
                return
            if attempt.http_status == 410:
                await self._log(endpoint, delivery, DeliveryStatus.FAILED, attempt)
                await self.book.set_status(endpoint.id, EndpointStatus.DISABLED,
                                           f"the receiver answered 410 Gone at {attempt.at}")
                await self._bury(endpoint, delivery, DeadReason.ENDPOINT_DISABLED)
                return
            delay = self.policy.delay_s(len(delivery.attempts), retry_after)
            if delay is None:
                await self._log(endpoint, delivery, DeliveryStatus.FAILED, attempt)
                await self._bury(endpoint, delivery, DeadReason.RETRIES_EXHAUSTED)
                return
            next_at = datetime.now(UTC) + timedelta(seconds=delay)
            await self._log(endpoint, delivery, DeliveryStatus.RETRYING, attempt, next_at)
            gateway_webhook_retries_total.labels(system=endpoint.system).inc()
            gateway_deliveries_total.labels(channel="webhook", system=endpoint.system,
                                            outcome="retrying").inc()
            await asyncio.sleep(delay)

    async def _attempt(self, endpoint: Endpoint, delivery: Delivery
                       ) -> tuple[Attempt, float | None]:
        assert self._http is not None
        body = delivery.outgoing.body.encode()
        headers = signed_headers(secret_key(endpoint.secret), delivery.outgoing.routing.event_id,
                                 int(time.time()), body)
        headers["content-type"] = CONTENT_TYPE
        number = len(delivery.attempts) + 1
        started = time.monotonic()
        status: int | None = None
        retry_after: float | None = None
        error: str | None = None
        try:
            async with self._http.post(endpoint.url, data=body, headers=headers,
                                       allow_redirects=False) as response:
                status = response.status
                if status in RETRY_AFTER_STATUSES:
                    retry_after = retry_after_s(response.headers.get("retry-after"))
                if not 200 <= status < 300:
                    error = (await response.text(errors="replace"))[:200] or response.reason
            outcome = "success" if 200 <= status < 300 else f"http_{status}"
        except TimeoutError:
            outcome, error = "timeout", (f"no answer within {self.settings.webhook_timeout_s:g}"
                                         " s")
        except aiohttp.ClientError as exc:
            outcome, error = "connection_error", str(exc) or type(exc).__name__
        duration_ms = int((time.monotonic() - started) * 1000)
        return Attempt(number, datetime.now(UTC).isoformat(), outcome, duration_ms, status,
                       error), retry_after

    async def _bury(self, endpoint: Endpoint, delivery: Delivery, reason: DeadReason) -> None:
        """Write the delivery to the dead-letter topic; returns once Kafka has it."""
        assert self._producer is not None
        letter = DeadLetter(endpoint.id, endpoint.system, endpoint.url, reason,
                            datetime.now(UTC).isoformat(), json.loads(delivery.outgoing.body),
                            list(delivery.attempts))
        while True:  # a dead letter is the delivery's last copy: never given up
            try:
                await self._producer.send_and_wait(
                    self.dead_letter_topic, letter.record(), key=endpoint.id.encode(),
                    headers=[("ce_id", delivery.outgoing.routing.event_id.encode()),
                             ("ce_type", delivery.outgoing.routing.ce_type.encode())])
                break
            except KafkaError:
                log.exception("webhook dead letter of %s not written yet; trying again",
                              delivery.outgoing.routing.event_id)
                await asyncio.sleep(1)
        if not delivery.attempts:
            await self._log(endpoint, delivery, DeliveryStatus.FAILED, None,
                            error=f"not attempted: {reason.value}")
        gateway_webhook_dead_letters_total.labels(system=endpoint.system,
                                                  reason=reason.value).inc()
        gateway_deliveries_total.labels(channel="webhook", system=endpoint.system,
                                        outcome="dead_lettered").inc()

    async def _log(self, endpoint: Endpoint, delivery: Delivery, status: DeliveryStatus,
                   attempt: Attempt | None, next_at: datetime | None = None, *,
                   error: str | None = None) -> None:
        """The attempt as the design's EventDeliveryLog, to the delivery-log topic."""
        assert self._producer is not None
        routing = delivery.outgoing.routing
        record = DeliveryLog(
            event_id=UUID(routing.event_id), event_type=routing.ce_type,
            source_system=routing.source_system, target_systems=sorted(routing.targets),
            delivery_status=status, delivery_time=attempt.duration_ms if attempt else 0,
            retry_count=max(len(delivery.attempts) - 1, 0),
            error_message=error or (attempt.error if attempt else None),
            timestamp=datetime.now(UTC), channel=DeliveryChannel.WEBHOOK,
            target_system=endpoint.system, hotel_id=routing.hotel_id, endpoint_id=endpoint.id,
            http_status=attempt.http_status if attempt else None, next_attempt_at=next_at)
        try:
            await self._producer.send(self.delivery_log_topic, self.codec.encode(record),
                                      key=routing.event_id.encode())
        except KafkaError:
            log.exception("delivery log: attempt of %s not written", routing.event_id)

    # -- committing --------------------------------------------------------------------

    async def _commit_often(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_EVERY_S)
            try:
                await self.commit()
            except KafkaError:
                log.warning("webhook consumer: commit failed (a rebalance?); trying again",
                            exc_info=True)

    async def commit(self) -> None:
        """Commit each partition at its oldest unfinished event, or past what was read."""
        consumer = self._consumer
        if consumer is None:
            return
        offsets: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            oldest = self.marks.oldest(tp)
            offset = oldest if oldest is not None else self.marks.read.get(tp)
            if offset is not None and self._committed.get(tp) != offset:
                offsets[tp] = offset
        if offsets:
            await consumer.commit(offsets)
            self._committed.update(offsets)

    # -- replays ------------------------------------------------------------------------

    async def replay_dead_letters(self, endpoint: Endpoint, since: datetime | None) -> int:
        """Deliver the endpoint's dead letters again, in the order they died, through its
        lanes (fresh attempts; the same webhook-id, so a receiver that has one can tell)."""
        letters = await read_dead_letters(self.settings, endpoint.id, since)
        for letter in letters:
            await self.enqueue(Delivery(endpoint.id, Outgoing.from_message(letter.event),
                                        None, 0, 0, time.time()))
        return len(letters)

    async def replay_since(self, endpoint: Endpoint, since: datetime) -> int:
        """Deliver again every event the endpoint wants that was published since `since`
        (up to now), in log order per partition."""
        feed = Feed(self.settings, self.reader.topics.names)
        await feed.start(since=since)
        count = 0
        try:
            async for record in feed.to_end():
                if record.value is None:
                    continue
                try:
                    outgoing = await self.reader.outgoing(
                        record.topic, record.key, record.value,
                        self.reader.routing(record.topic, record.headers))
                except CodecError:
                    continue
                if any(found.id == endpoint.id for found in self._wanting(outgoing.routing)):
                    count += 1
                    await self.enqueue(Delivery(endpoint.id, outgoing, None, 0, 0,
                                                record.timestamp / 1000))
        finally:
            await feed.stop()
        return count
