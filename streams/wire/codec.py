"""Confluent wire format for Avro: magic byte 0, 4-byte big-endian schema id, Avro binary.

Any Confluent-compatible client reads what we write, and we read what it
writes. Schemas are parsed once; writer schemas are fetched by id from the
registry on first sight and cached (ids are immutable).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import fastavro
from pydantic import ValidationError

from schemas import schema_text
from streams.core.exceptions import CodecError, RegistryError, RegistryUnavailable
from streams.core.kinds import CONTRACT_TOPICS, DELIVERY_LOG_CONTRACT, EventKind, subject_of
from streams.core.models import (
    CONTRACT_MODELS,
    EVENT_MODELS,
    DeliveryLog,
    HotelEvent,
    Refusal,
)
from streams.wire.avro_schema import UnusableSchema, usable_schema

MAGIC_BYTE = 0
_REGISTRY_RETRY_S = (0.5, 1.0, 2.0, 5.0)


def registry_backoff_s(attempt: int) -> float:
    """How long to wait before asking a registry that did not answer again (attempt 0, 1…)."""
    return _REGISTRY_RETRY_S[min(attempt, len(_REGISTRY_RETRY_S) - 1)]
_HEADER = struct.Struct(">bI")


class SchemaSource(Protocol):
    """What the codec needs of a schema registry."""

    async def register(self, subject: str, schema_text: str) -> int: ...

    async def schema_by_id(self, schema_id: int) -> str: ...


class _Found(Protocol):
    @property
    def id(self) -> int: ...


@runtime_checkable
class SchemaLookup(Protocol):
    """A source that can say whether a schema is registered without registering it
    (`SchemaRegistryClient.lookup`): what lets a non-operator start without write rights."""

    async def lookup(self, subject: str, schema_text: str) -> _Found | None: ...


class ContractNotRegistered(RegistryError):
    """The registry lacks one of our contracts and this identity may not register it."""


def parse_schema(text: str) -> Any:
    """fastavro's form of a schema the registry would accept too (`streams.wire.avro_schema`),
    with its own namespace of named types; `CodecError` when it is not usable."""
    try:
        return usable_schema(text).fast
    except UnusableSchema as exc:
        raise CodecError(f"unusable Avro schema: {exc}") from exc


class ConfluentAvroCodec:
    """Encodes events with our contracts and decodes any registered writer schema into them."""

    def __init__(
        self, registry: SchemaSource, *, contracts: Mapping[str, str] | None = None
    ) -> None:
        """`contracts` replaces a contract's schema text, e.g. for a consumer pinned to
        another version; by default every `schemas/avro/*.avsc` is used."""
        self._registry = registry
        self._texts = {name: schema_text(name) for name in CONTRACT_TOPICS} | dict(contracts or {})
        self._readers = {name: parse_schema(text) for name, text in self._texts.items()}
        self._writer_ids: dict[str, int] = {}
        self._writers_by_id: dict[int, Any] = {}
        self._resolutions: dict[tuple[int, str], tuple[Any, Any]] = {}
        """(writer, reader or None) per (schema id, contract): a reader equal to the writer is
        None, so fastavro neither compares the two schemas nor resolves one into the other on
        every record (both cost more than reading a small record)."""

    async def register(self, *contracts: str) -> dict[str, int]:
        """Find (or register) our contracts' ids so `encode` knows them.

        A contract the registry already holds is only looked up: publishers and workers
        read the registry and need no right to write it. One it lacks is registered, which
        only the operator may do when security is on; anyone else gets
        `ContractNotRegistered` naming the subject and the command that registers it.
        """
        for name in contracts or tuple(self._texts):
            subject, text = subject_of(name), self._texts[name]
            found = (await self._registry.lookup(subject, text)
                     if isinstance(self._registry, SchemaLookup) else None)
            schema_id = found.id if found is not None else await self._register(subject, text)
            self._writer_ids[name] = schema_id
            self._writers_by_id[schema_id] = self._readers[name]
        return dict(self._writer_ids)

    async def _register(self, subject: str, text: str) -> int:
        try:
            return await self._registry.register(subject, text)
        except RegistryError as exc:
            if exc.status != 403:
                raise
            raise ContractNotRegistered(
                f"the schema registry does not hold this version of the contract {subject!r}, "
                "and this identity may not register it: the operator registers the contracts "
                f"(`hotelhub schemas register`) before publishers and workers start ({exc})",
                status=exc.status, error_code=exc.error_code,
            ) from exc

    async def ensure_registered(self) -> None:
        """Register every contract once per codec; later calls cost nothing."""
        if len(self._writer_ids) < len(self._texts):
            await self.register()

    def schema_id(self, kind: str) -> int:
        try:
            return self._writer_ids[kind]
        except KeyError:
            raise CodecError(
                f"the {kind} contract is not registered; call register() first"
            ) from None

    def encode(self, event: HotelEvent | Refusal | DeliveryLog) -> bytes:
        contract = (DELIVERY_LOG_CONTRACT if isinstance(event, DeliveryLog)
                    else "refusal" if isinstance(event, Refusal) else str(event.type))
        schema_id = self.schema_id(contract)
        buffer = io.BytesIO()
        buffer.write(_HEADER.pack(MAGIC_BYTE, schema_id))
        try:
            fastavro.schemaless_writer(
                buffer, self._readers[contract], event.model_dump(mode="python")
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise CodecError(f"cannot encode {contract} record: {exc}") from exc
        return buffer.getvalue()

    async def decode_record(self, kind: str, payload: bytes) -> dict[str, Any]:
        """Decode to a plain record resolved against our contract (schema evolution)."""
        schema_id = self._schema_id_of(kind, payload)
        resolution = self._resolutions.get((schema_id, kind))
        if resolution is None:
            resolution = self._resolution(schema_id, kind, await self._writer_schema(schema_id))
        return self._read(kind, schema_id, resolution, payload)

    def decode_known(self, kind: EventKind, payload: bytes) -> HotelEvent | None:
        """`decode` without a coroutine for a record whose writer schema this codec has
        already seen (the steady state of a consumer); None when the registry must be asked
        first (then await `decode`). Raises `CodecError` as `decode` does."""
        record = self.decode_known_record(kind, payload)
        return None if record is None else self._event(kind, record)

    def decode_known_record(self, kind: str, payload: bytes) -> dict[str, Any] | None:
        """`decode_record` without a coroutine, as `decode_known` (None: ask the registry)."""
        schema_id = self._schema_id_of(kind, payload)
        resolution = self._resolutions.get((schema_id, kind))
        if resolution is None:
            writer = self._writers_by_id.get(schema_id)
            if writer is None:
                return None
            resolution = self._resolution(schema_id, kind, writer)
        return self._read(kind, schema_id, resolution, payload)

    async def decode(self, kind: EventKind, payload: bytes) -> HotelEvent:
        """Decode and validate into the kind's model; CodecError names what is wrong."""
        return self._event(kind, await self.decode_record(kind, payload))

    async def decode_refusal(self, payload: bytes) -> Refusal:
        return Refusal.model_validate(self._contract(
            "refusal", await self.decode_record("refusal", payload)))

    def _event(self, kind: EventKind, record: dict[str, Any]) -> HotelEvent:
        validated = self._contract(kind, record)
        model = EVENT_MODELS[kind]
        # An event kind's contract model is its event model: validating twice is a no-op.
        return validated if isinstance(validated, model) else model.model_validate(validated)

    @staticmethod
    def _contract(contract: str, record: dict[str, Any]) -> Any:
        try:
            return CONTRACT_MODELS[contract].model_validate(record)
        except ValidationError as exc:
            raise CodecError(f"{contract} record violates its contract: {exc}") from exc

    @staticmethod
    def _schema_id_of(kind: str, payload: bytes) -> int:
        if len(payload) < _HEADER.size:
            raise CodecError(f"{len(payload)} bytes is shorter than the Confluent header")
        magic, schema_id = _HEADER.unpack_from(payload)
        if magic != MAGIC_BYTE:
            raise CodecError(f"magic byte {magic} is not the Confluent framing (0)")
        return int(schema_id)

    def _resolution(self, schema_id: int, kind: str, writer: Any) -> tuple[Any, Any]:
        reader = self._readers[kind]
        resolution = (writer, None if writer is reader or writer == reader else reader)
        self._resolutions[(schema_id, kind)] = resolution
        return resolution

    @staticmethod
    def _read(kind: str, schema_id: int, resolution: tuple[Any, Any], payload: bytes
              ) -> dict[str, Any]:
        writer, reader = resolution
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(payload[_HEADER.size :]), writer, reader)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise CodecError(
                f"{kind} record with schema id {schema_id} is not valid Avro: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(record, dict):
            raise CodecError(f"{kind} record decoded to {type(record).__name__}, not a record")
        return record

    async def _writer_schema(self, schema_id: int) -> Any:
        writer = self._writers_by_id.get(schema_id)
        if writer is None:
            try:
                text = await self._registry.schema_by_id(schema_id)
            except RegistryError as exc:
                if exc.status is not None and exc.status < 500:
                    raise CodecError(
                        f"schema id {schema_id} is unknown to the registry: {exc}"
                    ) from exc
                raise RegistryUnavailable(
                    f"the schema registry did not give schema id {schema_id}: {exc}"
                ) from exc
            try:
                writer = parse_schema(text)
            except Exception as exc:  # fastavro raises many types on schemas it cannot use
                raise CodecError(
                    f"schema id {schema_id} cannot be used by the codec: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self._writers_by_id[schema_id] = writer
        return writer
