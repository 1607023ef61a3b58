"""Avro parsing, schema identity and compatibility decisions, free of I/O.

Identity: two schema texts are the same schema when their parsed forms are equal
(`avro` resolves whitespace, key order and `{"type": "string"}` vs `"string"`), while
defaults, docs and aliases still count; those change how data is resolved, so the
Parsing Canonical Form (which drops them) would be too coarse for ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from streams.registry.exceptions import InvalidCompatibilityLevel, InvalidSchema
from streams.wire.avro_schema import MAX_SCHEMA_DEPTH, UnusableSchema, load_document, usable_schema


class CompatibilityLevel(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> CompatibilityLevel:
        """Case-insensitive, as Confluent accepts it; anything else is 42203."""
        if isinstance(value, str):
            try:
                return cls(value.strip().upper())
            except ValueError:
                pass
        raise InvalidCompatibilityLevel()

    @property
    def transitive(self) -> bool:
        return self.name.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.name.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.name.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD_TRANSITIVE
"""Our global default; stricter than Confluent's BACKWARD, so a consumer on any old
version of a contract can still be replaced by one on the newest."""


@dataclass(frozen=True)
class ParsedSchema:
    """A schema parsed once: `text` is what we store and serve, `identity` what we compare."""

    text: str
    identity: str
    avro: avro.schema.Schema


def parse_schema(text: object, *, strict: bool = True) -> ParsedSchema:
    """Parse an Avro schema text; invalid input is 42201 with the parser's message.

    `strict` (every request) demands what the codec demands too (`streams.wire.avro_schema`),
    so the registry never hands out an id its consumers cannot decode with. Replaying
    `_schemas` is lenient (the `avro` package alone), so a version registered before a
    rule existed keeps its id rather than vanish on restart.
    """
    try:
        if strict:
            usable = usable_schema(text)
            document, parsed = usable.document, usable.avro
        else:
            document = load_document(text)
            parsed = avro.schema.parse(str(text))
    except UnusableSchema as exc:
        raise InvalidSchema(f"Invalid schema: {exc}") from exc
    except RecursionError:
        raise InvalidSchema(f"Invalid schema: nested more than {MAX_SCHEMA_DEPTH} levels deep"
                            ) from None
    except (avro.errors.AvroException, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidSchema(f"Invalid schema: {type(exc).__name__}: {str(exc)[:500]}") from exc
    return ParsedSchema(
        # The author's JSON, compacted: keeps their key order for people reading it.
        text=json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        identity=json.dumps(
            parsed.to_json(), separators=(",", ":"), sort_keys=True, ensure_ascii=False
        ),
        avro=parsed,
    )


def reader_writer_problems(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    """Why `reader` cannot read data written with `writer`; empty when it can."""
    # It memoises per pair, so one per check; its __init__ lacks annotations.
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader.avro, writer.avro)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted({str(kind.value) for kind in result.incompatibilities}))
    where = ", ".join(sorted(result.locations))
    detail = "; ".join(sorted(result.messages))
    return [f"{kinds} at {where}: {detail}"]


def compatibility_problems(
    level: CompatibilityLevel,
    new: ParsedSchema,
    previous: Sequence[tuple[int, ParsedSchema]],
) -> list[str]:
    """Messages explaining why `new` breaks `level` against `previous` (version, schema) pairs.

    `previous` is what the caller chose to compare with (all live versions for a
    transitive level, the latest for a plain one); empty means compatible.
    """
    if level is CompatibilityLevel.NONE:
        return []
    messages: list[str] = []
    for version, old in previous:
        if level.backward:
            messages += [
                f"new schema cannot read data written with version {version} ({level}): {why}"
                for why in reader_writer_problems(new, old)
            ]
        if level.forward:
            messages += [
                f"version {version} cannot read data written with the new schema ({level}): {why}"
                for why in reader_writer_problems(old, new)
            ]
    return messages


def versions_to_check(
    level: CompatibilityLevel, live: Sequence[tuple[int, ParsedSchema]]
) -> Sequence[tuple[int, ParsedSchema]]:
    """Transitive levels compare with every live version, plain ones with the latest only."""
    if level is CompatibilityLevel.NONE or not live:
        return []
    return live if level.transitive else live[-1:]
