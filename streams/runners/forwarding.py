"""The hotel processor's first hop: a source record re-keyed to its hotel's partition of
`<app>.hotel-events`, and the dead letter of a record that cannot be handled.

This is where a record enters the hub, so its signature is checked here
(`streams.wire.signing`) and the forwarded record carries what was found: `hub.principal`
(the verified producer) or `hub.unverified` (why none), set by the hub alone (a client's
own are dropped; only the hub writes `<app>.hotel-events`). The rules refuse the event
when that is not the system it names (`streams.core.rules.origin`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from aiokafka.structs import ConsumerRecord

from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, EventKind, System
from streams.core.models import HotelEvent, record_key
from streams.runners.effects import DERIVED_BY, OutRecord
from streams.runners.ordering import SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.deadletters import deadletter_headers
from streams.wire.partitioning import hotel_partition
from streams.wire.signing import HUB_SET, Verifier

HOTEL_HEADER = "ce_hotelid"
SOURCE_HEADERS = (SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class Forwarding:
    def __init__(self, settings: HubSettings, codec: ConfluentAvroCodec,
                 sources: Mapping[str, EventKind], hotel_events: str) -> None:
        self.settings = settings
        self.codec = codec
        self.sources = sources
        self.hotel_events = hotel_events
        self._signed_topics = {topic: POLICIES[kind].topic for topic, kind in sources.items()}
        """Each source topic's name without the prefix: what its records are signed for."""
        self.verifier = Verifier.of(settings)
        """None when security is off: nothing is verified, the event's system is taken."""

    async def forward(self, record: Record) -> list[OutRecord]:
        """Re-key to the hotel's partition; our own derived room events are applied already.

        The hotel is read from the `ce_hotelid` header when the key agrees with it
        (`hotel_id:entity_id`), so the event is decoded once, where it is applied; a record
        without them is decoded here (and dead-lettered here if it cannot be read)."""
        headers = [(name, value) for name, value in record.headers or ()
                   if name not in HUB_SET]
        found = header_map(headers)
        verified = None if self.verifier is None else self.verifier.verify(
            self._signed_topics[record.topic], record.key, record.value, headers)
        if DERIVED_BY in found and (verified is None
                                    or verified.identity == System.HOTEL_HUB.value):
            return []  # a room status derived from a movement every hub app sees itself
        if verified is not None:
            headers += verified.headers()
        hotel = found.get(HOTEL_HEADER, "")
        key = record.key or b""
        if not hotel or not key.startswith(hotel.encode() + b":"):
            event = await self.codec.decode(self.sources[record.topic], record.value or b"")
            hotel, key = event.hotel_id, record_key(event)
        return [self.rekeyed(record, key, hotel, headers)]

    def rekeyed(self, record: Record, key: bytes, hotel: str,
                headers: list[tuple[str, bytes]]) -> OutRecord:
        return OutRecord(
            self.hotel_events, key, record.value or b"",
            [*headers, (SOURCE_TOPIC, record.topic.encode()),
             (SOURCE_PARTITION, str(record.partition).encode()),
             (SOURCE_OFFSET, str(record.offset).encode())],
            partition=hotel_partition(hotel, self.settings.topic_partitions),
            timestamp_ms=record.timestamp)

    def again(self, record: Record, event: HotelEvent) -> OutRecord:
        """A re-keyed record whose header named another hotel than its event: on to the
        event's hotel, with its first `hub.source.*` headers."""
        kept = [(name, value) for name, value in record.headers or ()
                if name not in SOURCE_HEADERS]
        again = self.rekeyed(record, record_key(event), event.hotel_id, kept)
        return OutRecord(again.topic, again.key, again.value,
                         [*kept, *(item for item in record.headers or ()
                                   if item[0] in SOURCE_HEADERS)],
                         partition=again.partition, timestamp_ms=again.timestamp_ms)

    def dead_letter(self, record: Record, error: BaseException) -> tuple[OutRecord, str]:
        """The original bytes and headers, plus where the record was first written and why;
        and that topic. The hub's own `hub.principal` is left out: a replay is verified
        again when it comes back."""
        headers = list(record.headers or ())
        found = header_map(headers)
        topic = found.get(SOURCE_TOPIC, record.topic)
        partition = int(found.get(SOURCE_PARTITION, record.partition))
        offset = int(found.get(SOURCE_OFFSET, record.offset))
        kept = [(name, value) for name, value in headers
                if name not in SOURCE_HEADERS and name not in HUB_SET]
        return OutRecord(
            self.settings.topic(DEADLETTER_TOPIC), record.key or b"", record.value or b"",
            [*kept, *deadletter_headers(topic=topic, partition=partition, offset=offset,
                                        error=error)]), topic
