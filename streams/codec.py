"""Confluent wire format for Avro: magic byte 0, 4-byte big-endian schema id, Avro binary.

Any Confluent-compatible client reads what we write, and we read what it
writes. Schemas are parsed once; writer schemas are fetched by id from the
registry on first sight and cached (ids are immutable).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from typing import Any, Protocol

import fastavro
from pydantic import ValidationError

from schemas import schema_text
from streams.exceptions import CodecError
from streams.kinds import POLICIES, EventKind
from streams.models import EVENT_MODELS, HotelEvent

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


class SchemaSource(Protocol):
    """What the codec needs of a schema registry."""

    async def register(self, subject: str, schema_text: str) -> int: ...

    async def schema_by_id(self, schema_id: int) -> str: ...


def parse_schema(text: str) -> Any:
    """Parse an Avro schema with its own namespace of named types."""
    return fastavro.parse_schema(json.loads(text), named_schemas={})


class ConfluentAvroCodec:
    """Encodes events with our contracts and decodes any registered writer schema into them."""

    def __init__(
        self, registry: SchemaSource, *, contracts: Mapping[EventKind, str] | None = None
    ) -> None:
        """`contracts` replaces a kind's schema text, e.g. a consumer pinned to another version."""
        self._registry = registry
        self._texts = {kind: schema_text(kind) for kind in EventKind} | dict(contracts or {})
        self._readers = {kind: parse_schema(text) for kind, text in self._texts.items()}
        self._writer_ids: dict[EventKind, int] = {}
        self._writers_by_id: dict[int, Any] = {}

    async def register(self, *kinds: EventKind) -> dict[EventKind, int]:
        """Register our contracts (idempotent) so `encode` knows their ids."""
        for kind in kinds or tuple(EventKind):
            schema_id = await self._registry.register(POLICIES[kind].subject, self._texts[kind])
            self._writer_ids[kind] = schema_id
            self._writers_by_id[schema_id] = self._readers[kind]
        return dict(self._writer_ids)

    def schema_id(self, kind: EventKind) -> int:
        try:
            return self._writer_ids[kind]
        except KeyError:
            raise CodecError(
                f"the {kind} contract is not registered; call register() first"
            ) from None

    def encode(self, event: HotelEvent) -> bytes:
        kind = EventKind(event.type)
        schema_id = self.schema_id(kind)
        buffer = io.BytesIO()
        buffer.write(_HEADER.pack(MAGIC_BYTE, schema_id))
        try:
            fastavro.schemaless_writer(buffer, self._readers[kind], event.model_dump(mode="python"))
        except (ValueError, TypeError, KeyError) as exc:
            raise CodecError(f"cannot encode {kind} event {event.event_id}: {exc}") from exc
        return buffer.getvalue()

    async def decode_record(self, kind: EventKind, payload: bytes) -> dict[str, Any]:
        """Decode to a plain record resolved against our contract (schema evolution)."""
        if len(payload) < _HEADER.size:
            raise CodecError(f"{len(payload)} bytes is shorter than the Confluent header")
        magic, schema_id = _HEADER.unpack_from(payload)
        if magic != MAGIC_BYTE:
            raise CodecError(f"magic byte {magic} is not the Confluent framing (0)")
        writer = await self._writer_schema(schema_id)
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(payload[_HEADER.size :]), writer, self._readers[kind]
            )
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise CodecError(
                f"{kind} record with schema id {schema_id} is not valid Avro: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(record, dict):
            raise CodecError(f"{kind} record decoded to {type(record).__name__}, not a record")
        return record

    async def decode(self, kind: EventKind, payload: bytes) -> HotelEvent:
        """Decode and validate into the kind's model; CodecError names what is wrong."""
        record = await self.decode_record(kind, payload)
        try:
            return EVENT_MODELS[kind].model_validate(record)
        except ValidationError as exc:
            raise CodecError(f"{kind} record violates its contract: {exc}") from exc

    async def _writer_schema(self, schema_id: int) -> Any:
        writer = self._writers_by_id.get(schema_id)
        if writer is None:
            try:
                text = await self._registry.schema_by_id(schema_id)
            except Exception as exc:
                raise CodecError(
                    f"schema id {schema_id} is unknown to the registry: {exc}"
                ) from exc
            writer = self._writers_by_id[schema_id] = parse_schema(text)
        return writer
