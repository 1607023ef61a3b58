"""HotelEventPublisher: the one way events enter the hub.

It validates, enriches and authorises before anything is sent, so a bad or
forbidden event never reaches a topic, and it produces with acks=all and the
idempotent producer so an acknowledged event is durable and never doubled by
a retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)
from pydantic import BaseModel

from streams.core.documents import build_event, check_built
from streams.core.exceptions import (
    BrokerUnavailable,
    CodecError,
    EventValidationError,
    HubError,
    PublishError,
    PublishForbidden,
)
from streams.core.kinds import POLICIES, EventKind, System
from streams.core.models import HotelEvent, record_key
from streams.ops.metrics import events_published_total
from streams.settings import HubSettings, get_settings
from streams.wire.cloudevents import Headers, headers_for
from streams.wire.codec import ConfluentAvroCodec, SchemaSource
from streams.wire.signing import Signer

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class PublishedEvent:
    """Where an acknowledged event now lives."""

    event: HotelEvent
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class PublishOutcome:
    """What `publish_many` did with one event of a batch, at the event's `index`.

    Exactly one of `published` and `error` is set. `error` is the same exception the
    one-event methods raise: `EventValidationError` (its `errors` name each bad field),
    `PublishForbidden`, `CodecError`, or `PublishError` when the broker did not take it.
    """

    index: int
    event: HotelEvent | None = None
    """The validated event (None when the document did not validate)."""
    published: PublishedEvent | None = None
    error: HubError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def problem(self) -> str | None:
        """`event 3: invalid reservation event: data.total_amount: ...`, or None when sent."""
        return None if self.error is None else f"event {self.index}: {self.error}"


@dataclass(frozen=True)
class _Record:
    event: HotelEvent
    topic: str
    key: bytes
    value: bytes
    headers: Headers


class HotelEventPublisher:
    """Publishes events for one system.

    Example:
        async with HotelEventPublisher(system=System.HOTEL_PMS, registry=client) as pub:
            await pub.publish("room", "status_changed", {...})
    """

    def __init__(
        self,
        *,
        system: System | str,
        registry: SchemaSource,
        settings: HubSettings | None = None,
        transactional_id: str | None = None,
    ) -> None:
        self.system = System(system)
        self.transactional_id = transactional_id
        """Set, the producer is transactional (`publish_atomically`); starting it fences
        an earlier producer of the same id and aborts that one's open transaction."""
        self.settings = settings or get_settings()
        # The producer authenticates as this system: the broker's ACLs then decide what it
        # may write, whatever this process's own identity is.
        self._auth = (self.settings if self.settings.identity == self.system.value
                      else self.settings.as_identity(self.system.value))
        self._codec = ConfluentAvroCodec(registry)
        self._producer: AIOKafkaProducer | None = None
        self._signer: Signer | None = None
        """Signs every record with the system's credential (`streams.wire.signing`): the hub
        takes the publishing system from the signature, not from `updated_by_system`."""
        self._limits = self.settings.limits()

    async def start(self) -> None:
        """Connect and register the contracts; fail fast when the broker is down."""
        await self._codec.register()
        self._signer = Signer.of(self._auth)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            **self._auth.kafka_auth(),
            client_id=f"hotelhub-publisher-{self.system}",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=int(self.settings.publish_timeout_s * 1000),
            **({"transactional_id": self.transactional_id,
                "transaction_timeout_ms": int(self.settings.client_transaction_timeout_s * 1000)}
               if self.transactional_id else {}),
        )
        try:
            await asyncio.wait_for(producer.start(), timeout=self.settings.connect_timeout_s)
        except (KafkaConnectionError, TimeoutError, OSError) as exc:
            await producer.stop()
            raise BrokerUnavailable(
                f"cannot reach Kafka at {self.settings.bootstrap_servers} within "
                f"{self.settings.connect_timeout_s:g} s; is the broker up (hotelhub broker status)?"
            ) from exc
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def __aenter__(self) -> HotelEventPublisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def metadata(self) -> None:
        """Ask the broker for its metadata: BrokerUnavailable when it does not answer in
        `connect_timeout_s` (an idle client's check that the link still holds)."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("publisher is not started")
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                await producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError) as exc:
            raise BrokerUnavailable(
                f"Kafka at {self.settings.bootstrap_servers} did not answer a metadata "
                f"request within {self.settings.connect_timeout_s:g} s: {exc!r}") from exc

    def encode(self, event: HotelEvent) -> bytes:
        """The record `send` would write; lets a caller check a batch before sending any."""
        return self._codec.encode(event)

    def build(self, document: Mapping[str, Any]) -> HotelEvent:
        return build_event(
            document, publisher=self.system, default_hotel_id=self.settings.default_hotel_id,
            limits=self._limits,
        )

    async def publish(
        self,
        kind: EventKind | str,
        action: str,
        data: Mapping[str, Any] | BaseModel,
        **envelope: Any,
    ) -> PublishedEvent:
        """Validate, enrich and publish one event; returns once the broker acknowledged it.

        `envelope` may carry hotel_id, event_id, occurred_at, origin_system,
        correlation_id and causation_id.
        """
        payload = data.model_dump() if isinstance(data, BaseModel) else dict(data)
        return await self.publish_document(
            {**envelope, "type": str(kind), "action": action, "data": payload}
        )

    async def publish_document(self, document: Mapping[str, Any]) -> PublishedEvent:
        """Publish a whole event document (as `hotelhub publish` reads it from JSON)."""
        return await self._send(self._record(self.build(document)))

    def _checked(self, event: HotelEvent) -> HotelEvent:
        """An already built event (`send`, `publish_many`, the offline outbox), checked as
        `build` checks a document (`check_built`)."""
        check_built(event, self.system)
        return event

    def _record(self, event: HotelEvent) -> _Record:
        """The signed record of a built and checked event."""
        base = POLICIES[EventKind(event.type)].topic
        key, value, headers = record_key(event), self.encode(event), headers_for(event)
        if self._signer is not None:
            headers = self._signer.sign(base, key, value, headers)
        return _Record(event, self.settings.topic(base), key, value, headers)

    async def send(self, event: HotelEvent) -> PublishedEvent:
        """Send an already validated event (the offline outbox replays these).

        A send the broker does not acknowledge in time is repeated with the same
        record, event_id included, up to `publish_attempts` times: if an earlier
        attempt did land after all, the hub drops the copy by its event_id.
        """
        return await self._send(self._record(self._checked(event)))

    async def _send(self, record: _Record) -> PublishedEvent:
        outcome = (await self._deliver({0: record}))[0]
        if isinstance(outcome, PublishError):
            raise outcome
        return outcome

    async def publish_many(
        self, events: Iterable[Mapping[str, Any] | HotelEvent]
    ) -> list[PublishOutcome]:
        """Validate, encode and send a batch; one outcome per event, in the batch's order.

        Documents (as `publish_document` takes them) are validated and enriched;
        events already validated (`HotelEvent` models) are checked and encoded. Every good
        event is sent, all at once (one send future each, no task per record), and
        awaited together, with the same timeout and retries as `send`. A bad event does
        not stop the others: its outcome carries the error naming what is wrong (for a
        document, `EventValidationError.errors` maps each field path to why) and
        `problem` adds its index. Nothing is raised for one event; `PublishError` only
        when the publisher is not started.
        """
        outcomes, records = self._prepare(events)
        for index, result in (await self._deliver(records)).items():
            event = records[index].event
            outcomes[index] = (
                PublishOutcome(index, event, error=result) if isinstance(result, PublishError)
                else PublishOutcome(index, event, published=result))
        return [outcomes[index] for index in sorted(outcomes)]

    def _prepare(self, events: Iterable[Mapping[str, Any] | HotelEvent]
                 ) -> tuple[dict[int, PublishOutcome], dict[int, _Record]]:
        """The outcomes of the events that cannot be sent, and the records of the others."""
        outcomes: dict[int, PublishOutcome] = {}
        records: dict[int, _Record] = {}
        for index, item in enumerate(events):
            try:
                event = (self._checked(item) if isinstance(item, BaseModel)
                         else self.build(item))
                records[index] = self._record(event)
            except (EventValidationError, PublishForbidden, CodecError) as exc:
                outcomes[index] = PublishOutcome(index, error=exc)
        return outcomes, records

    async def publish_atomically(
        self,
        events: Iterable[Mapping[str, Any] | HotelEvent],
        *,
        also: Iterable[tuple[str, bytes, bytes]] = (),
    ) -> list[PublishOutcome]:
        """Validate and sign a batch as `publish_many` does, then send its good events and
        the raw records of `also` (topic, key, value) in ONE Kafka transaction.

        A read_committed reader sees all of them or none, so a marker in `also` (the
        offline outbox's checkpoint) tells after a crash exactly what was sent. Bad events
        get their outcome's error and are not sent. A transaction Kafka does not commit
        within `publish_timeout_s` raises PublishError with nothing of it visible; send
        the batch again (the producer may need `stop` and `start`: a fenced or failed
        transactional producer is not reused).
        """
        producer = self._producer
        if producer is None or not self.transactional_id:
            raise PublishError("publish_atomically needs a started publisher with a "
                               "transactional_id")
        outcomes, records = self._prepare(events)
        futures: dict[int, asyncio.Future[Any]] = {}
        extra: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):
                async with producer.transaction():
                    for index, record in records.items():
                        futures[index] = await producer.send(
                            record.topic, record.value, key=record.key, headers=record.headers)
                    for topic, key, value in also:
                        extra.append(await producer.send(topic, value, key=key))
                    await asyncio.gather(*futures.values(), *extra)
        except (TimeoutError, KafkaError) as exc:
            for future in (*futures.values(), *extra):
                future.add_done_callback(_retrieve)
            reason = ("not committed within "
                      f"{self.settings.publish_timeout_s:g} s" if isinstance(exc, TimeoutError)
                      else f"aborted: {exc!r}")
            raise PublishError(
                f"the transaction of {len(records)} event(s) was {reason}; none of it is "
                "visible to read_committed readers, send it again") from exc
        for index, future in futures.items():
            metadata, record = future.result(), records[index]
            outcomes[index] = PublishOutcome(index, record.event, published=PublishedEvent(
                record.event, record.topic, metadata.partition, metadata.offset))
        self._count(records[index].event for index in futures)
        return [outcomes[index] for index in sorted(outcomes)]

    async def _deliver(
        self, records: Mapping[int, _Record]
    ) -> dict[int, PublishedEvent | PublishError]:
        """Send every record and wait for the acks together; retry what is not acknowledged.

        One attempt sends each waiting record (`producer.send` queues it and returns its
        future: no task per record) and waits for all their futures, bounded by
        `publish_timeout_s` (`asyncio.timeout`, which cancels only the wait, never a
        send already queued). What is not acknowledged by then is sent again, same bytes
        and event_id, up to `publish_attempts` times.
        """
        producer = self._producer
        if producer is None:
            raise PublishError("publisher is not started")
        timeout_s, attempts = self.settings.publish_timeout_s, self.settings.publish_attempts
        results: dict[int, PublishedEvent | PublishError] = {}
        waiting = dict(records)
        attempt = 1
        while waiting:
            futures: dict[int, asyncio.Future[Any]] = {}
            try:
                async with asyncio.timeout(timeout_s):
                    for index, record in waiting.items():
                        try:
                            futures[index] = await producer.send(
                                record.topic, record.value, key=record.key,
                                headers=record.headers)
                        except KafkaTimeoutError:
                            raise  # no metadata for the topic in time: as unacknowledged
                        except KafkaError as exc:  # e.g. a record larger than the broker takes
                            results[index] = self._refused(record, exc)
                    if futures:
                        await asyncio.wait(futures.values())
            except (TimeoutError, KafkaTimeoutError):
                pass
            for index, future in futures.items():
                future.add_done_callback(_retrieve)
                if not future.done() or future.cancelled():
                    continue
                error = future.exception()
                if error is None:
                    metadata = future.result()
                    record = waiting[index]
                    results[index] = PublishedEvent(record.event, record.topic,
                                                    metadata.partition, metadata.offset)
                elif not isinstance(error, KafkaTimeoutError):
                    results[index] = self._refused(waiting[index], error)
            waiting = {index: record for index, record in waiting.items()
                       if index not in results}
            if not waiting:
                break
            await self._give_up(producer, waiting, results, attempt, attempts, timeout_s)
            waiting = {index: record for index, record in waiting.items()
                       if index not in results}
            if waiting:
                log.warning("%d event(s) not acknowledged within %g s (attempt %d of %d); "
                            "sending them again", len(waiting), timeout_s, attempt, attempts)
            attempt += 1
        self._count(result.event for result in results.values()
                    if isinstance(result, PublishedEvent))
        return results

    def _count(self, published: Iterable[HotelEvent]) -> None:
        """`hotelhub_events_published_total` of what the broker acknowledged."""
        for kind, count in Counter(str(event.type) for event in published).items():
            events_published_total.labels(kind=kind, system=self.system.value).inc(count)

    async def _give_up(
        self, producer: AIOKafkaProducer, waiting: Mapping[int, _Record],
        results: dict[int, PublishedEvent | PublishError], attempt: int, attempts: int,
        timeout_s: float,
    ) -> None:
        """Fail what is not acknowledged when retrying cannot help: its topic is missing,
        or it was sent `attempts` times."""
        missing = {topic for topic in {record.topic for record in waiting.values()}
                   if await self._topic_missing(producer, topic)}
        for index, record in waiting.items():
            if record.topic in missing:
                results[index] = PublishError(
                    f"topic {record.topic} does not exist on the broker, which creates none "
                    "by itself; start a worker (it creates the hub's topics), then publish "
                    "again")
            elif attempt >= attempts:
                results[index] = PublishError(
                    f"Kafka did not acknowledge event {record.event.event_id} within "
                    f"{timeout_s:g} s, {attempt} time(s); publishing it again with the same "
                    "event_id is safe")

    def _refused(self, record: _Record, error: BaseException) -> PublishError:
        if isinstance(error, TopicAuthorizationFailedError):
            return PublishError(
                f"Kafka refused event {record.event.event_id}: {self._auth.identity} may not "
                f"write {record.topic} (the broker's ACLs; `hotelhub identity list` shows what "
                "each identity publishes)")
        return PublishError(f"Kafka refused event {record.event.event_id}: {error}")

    async def _topic_missing(self, producer: AIOKafkaProducer, topic: str) -> bool:
        """True only when the broker says `topic` does not exist (retrying cannot help);
        False when it exists or the broker cannot tell us in time."""
        if producer.client.cluster.partitions_for_topic(topic) is not None:
            return False
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                cluster = await producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError):
            return False
        return topic not in cluster.topics()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """An abandoned send's late failure is not an unhandled error: its retry decides."""
    if not future.cancelled():
        future.exception()
