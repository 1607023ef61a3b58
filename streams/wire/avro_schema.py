"""Whether an Avro schema text is usable by the hub: one check for the registry and the codec.

The registry decides compatibility with the `avro` package and the codec reads and
writes with `fastavro`; the two disagree at the edges (`avro` takes a string field
with `"default": 1`, `fastavro` refuses it). A schema the registry accepts must be one
every consumer can decode with, so both sides call `usable_schema`, which demands
what both parsers accept plus the rules below, and never raises anything but
`UnusableSchema` (no RecursionError on a schema nested thousands of levels deep).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
import fastavro

MAX_SCHEMA_DEPTH = 128
"""Deepest JSON nesting accepted. Real schemas stay far below it; both parsers and the
compatibility checker recurse per level and fail (slowly, with huge messages) near 600."""

MAX_REASON_CHARS = 500
"""Parser messages can quote the whole schema at every level; keep the reason readable."""

PRIMITIVE_TYPES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes",
                             "string"})


class UnusableSchema(ValueError):
    """A schema text neither the registry nor the codec may use; the message says why."""


@dataclass(frozen=True)
class UsableSchema:
    """A schema both parsers accepted: `document` is its JSON, `fast` fastavro's parsed form
    (what the codec encodes and decodes with), `avro` the `avro` package's (what the
    registry compares for compatibility)."""

    document: Any
    fast: Any
    avro: avro.schema.Schema


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "..."


def _depth(document: Any) -> int:
    """JSON nesting depth, iteratively, so measuring a hostile document cannot recurse."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_SCHEMA_DEPTH:
            return deepest
        children = node.values() if isinstance(node, dict) else node if isinstance(
            node, list) else ()
        stack.extend((child, level + 1) for child in children
                     if isinstance(child, dict | list))
    return deepest


def load_document(text: object) -> Any:
    """The schema's JSON, refused when it is empty, not JSON or nested too deeply."""
    if not isinstance(text, str) or not text.strip():
        raise UnusableSchema("Empty schema")
    try:
        document = json.loads(text)
    except RecursionError:
        raise UnusableSchema(
            f"schema is nested more than {MAX_SCHEMA_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise UnusableSchema(f"schema is not JSON: {exc}") from None
    if _depth(document) > MAX_SCHEMA_DEPTH:
        raise UnusableSchema(f"schema is nested more than {MAX_SCHEMA_DEPTH} levels deep")
    try:  # `"\ud800"` is valid JSON but no Unicode text: it can be neither stored nor sent
        json.dumps(document, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise UnusableSchema(
            f"schema holds {exc.object[exc.start:exc.end]!r}, a lone surrogate, not text"
        ) from None
    return document


def _misplaced_defaults(node: Any, path: str) -> list[str]:
    """Paths of `default`s on types rather than on record fields.

    Avro reads a default only from a record field (and an enum's fallback symbol); on a
    type it is an ignored attribute, so `{"type": "string", "default": 1}` looks like a
    default and is none. Refusing it is the one rule the parsers do not share.
    """
    if isinstance(node, list):
        return [found for index, branch in enumerate(node)
                for found in _misplaced_defaults(branch, f"{path}[{index}]")]
    if not isinstance(node, dict):
        return []
    kind = node.get("type")
    found = [path] if "default" in node and kind != "enum" else []
    if kind in ("record", "error"):
        fields = node.get("fields")
        for field in fields if isinstance(fields, list) else []:
            if isinstance(field, dict):
                name = field.get("name", "?")
                found += _misplaced_defaults(field.get("type"), f"{path}.{name}")
    elif kind == "array":
        found += _misplaced_defaults(node.get("items"), f"{path}[]")
    elif kind == "map":
        found += _misplaced_defaults(node.get("values"), f"{path}{{}}")
    elif isinstance(kind, dict | list):
        found += _misplaced_defaults(kind, path)
    return found


def usable_schema(text: object) -> UsableSchema:
    """Parse `text` with both parsers and the shared rules; `UnusableSchema` says why not."""
    document = load_document(text)
    misplaced = _misplaced_defaults(document, "schema")
    if misplaced:
        raise UnusableSchema(_shorten(
            "a default belongs to a record field, not to a type (Avro ignores it there): "
            + ", ".join(misplaced)))
    try:
        fast = fastavro.parse_schema(document, named_schemas={})
    except RecursionError:
        raise UnusableSchema("schema is nested too deeply for the codec") from None
    except Exception as exc:  # fastavro raises many types on schemas it cannot use
        raise UnusableSchema(_shorten(f"{type(exc).__name__}: {exc}")) from None
    try:
        parsed = avro.schema.parse(str(text))
    except RecursionError:
        raise UnusableSchema("schema is nested too deeply for the registry") from None
    except (avro.errors.AvroException, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UnusableSchema(_shorten(f"{type(exc).__name__}: {exc}")) from None
    return UsableSchema(document=document, fast=fast, avro=parsed)


__all__ = ["MAX_SCHEMA_DEPTH", "UnusableSchema", "UsableSchema", "load_document",
           "usable_schema"]
