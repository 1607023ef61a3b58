"""Contracts evolve: old and new consumers both read both versions; breaking changes are refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from schemas import schema_text
from streams.core.documents import build_event
from streams.core.exceptions import SchemaIncompatible
from streams.core.kinds import EventKind
from streams.settings import HubSettings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import sample

pytestmark = pytest.mark.integration


class OwnSubjects:
    """The real registry, under subjects of this test's own so nothing shared changes."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self.client = client
        self.prefix = f"evolution-{uuid.uuid4().hex[:8]}-"

    async def register(self, subject: str, schema_text: str) -> int:
        return await self.client.register(self.prefix + subject, schema_text)

    async def schema_by_id(self, schema_id: int) -> str:
        return await self.client.schema_by_id(schema_id)


def reservation_with(field: dict[str, Any]) -> str:
    schema = json.loads(schema_text(EventKind.RESERVATION))
    data = next(f for f in schema["fields"] if f["name"] == "data")
    data["type"]["fields"].append(field)
    return json.dumps(schema)


@pytest.fixture
async def registry(hub_settings: HubSettings) -> AsyncIterator[OwnSubjects]:
    async with SchemaRegistryClient(hub_settings.registry_url) as client:
        yield OwnSubjects(client)


async def test_old_and_new_consumers_read_both_versions(registry: OwnSubjects) -> None:
    v2 = reservation_with({"name": "special_requests", "type": ["null", "string"],
                           "default": None})
    old = ConfluentAvroCodec(registry)
    new = ConfluentAvroCodec(registry, contracts={EventKind.RESERVATION: v2})
    old_id = (await old.register(EventKind.RESERVATION))[EventKind.RESERVATION]
    new_id = (await new.register(EventKind.RESERVATION))[EventKind.RESERVATION]
    assert new_id != old_id

    system, document = sample(EventKind.RESERVATION)
    event = build_event(document, publisher=system, default_hotel_id="HTL-1")
    written_by_old, written_by_new = old.encode(event), new.encode(event)

    assert await old.decode(EventKind.RESERVATION, written_by_old) == event
    assert await old.decode(EventKind.RESERVATION, written_by_new) == event
    for payload in (written_by_old, written_by_new):
        record = await new.decode_record(EventKind.RESERVATION, payload)
        assert record["data"].pop("special_requests") is None
        assert record["data"]["total_amount"] == event.data.total_amount


async def test_a_new_required_field_is_refused(registry: OwnSubjects) -> None:
    await ConfluentAvroCodec(registry).register(EventKind.RESERVATION)
    breaking = reservation_with({"name": "loyalty_tier", "type": "string"})
    with pytest.raises(SchemaIncompatible):
        await ConfluentAvroCodec(
            registry, contracts={EventKind.RESERVATION: breaking}
        ).register(EventKind.RESERVATION)
