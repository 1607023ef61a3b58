"""Confluent's own serializers read what we write, and we read what they write (with
security on, their registry client authenticates with `basic.auth.user.info`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentRegistry
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas import schema_text
from streams.core.documents import build_event
from streams.core.kinds import POLICIES, EventKind
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import sample

pytestmark = pytest.mark.integration


@pytest.fixture
async def codec(hub_settings: HubSettings) -> AsyncIterator[ConfluentAvroCodec]:
    async with SchemaRegistryClient.from_settings(hub_settings) as client:
        codec = ConfluentAvroCodec(client)
        await codec.register()
        yield codec


@pytest.mark.parametrize("kind", list(EventKind))
async def test_confluent_reads_ours_and_we_read_confluents(
    kind: EventKind, codec: ConfluentAvroCodec, hub_settings: HubSettings
) -> None:
    system, document = sample(kind)
    event = build_event(document, publisher=system, default_hotel_id="HTL-1")
    record = event.model_dump(mode="python")
    context = SerializationContext(POLICIES[kind].topic, MessageField.VALUE)
    conf = {"url": hub_settings.registry_url}
    found = hub_settings.credentials()
    if found is not None and "@" not in hub_settings.registry_url:
        conf["basic.auth.user.info"] = ":".join(found)
    confluent = ConfluentRegistry(conf)

    theirs = AvroDeserializer(confluent)(codec.encode(event), context)
    assert theirs == record

    serializer = AvroSerializer(confluent, schema_text(kind),
                                conf={"auto.register.schemas": False, "use.latest.version": True})
    written_by_them = serializer(record, context)
    assert written_by_them[1:5] == codec.encode(event)[1:5]  # the same registered schema id
    assert await codec.decode(kind, written_by_them) == event
