"""The registry's memory, rebuilt by replaying `_schemas` records in Confluent's layout.

Keys and values are JSON as Confluent's registry writes them, so a Confluent or
Redpanda registry pointed at the same topic would read our history and vice versa:

    SCHEMA          {"keytype":"SCHEMA","subject":s,"version":v,"magic":1}
                    -> {"subject":s,"version":v,"id":n,"schema":"...","deleted":false}
    CONFIG          {"keytype":"CONFIG","subject":s,"magic":0}  (no subject: global)
                    -> {"compatibilityLevel":"FULL"}
    DELETE_SUBJECT  {"keytype":"DELETE_SUBJECT","subject":s,"magic":0}
                    -> {"subject":s,"version":latest_deleted}

A null value (tombstone) removes the key: a permanently deleted version or a removed
config. Other key types (NOOP, MODE, ...) are skipped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from streams.registry.compatibility import CompatibilityLevel, ParsedSchema, parse_schema
from streams.registry.exceptions import InvalidSchema

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
Record = tuple[JsonObject, JsonObject | None]


def schema_key(subject: str, version: int) -> JsonObject:
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def config_key(subject: str | None) -> JsonObject:
    if subject is None:
        return {"keytype": "CONFIG", "magic": 0}
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def delete_subject_key(subject: str) -> JsonObject:
    return {"keytype": "DELETE_SUBJECT", "subject": subject, "magic": 0}


def config_value(level: CompatibilityLevel, subject: str | None) -> JsonObject:
    value: JsonObject = {"compatibilityLevel": level.value}
    if subject is not None:
        value["subject"] = subject
    return value


def encode(document: JsonObject | None) -> bytes | None:
    """Compact and in insertion order: compaction matches keys byte for byte."""
    if document is None:
        return None
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes | None) -> JsonObject | None:
    if raw is None:
        return None
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, got {raw!r}")
    return document


@dataclass(frozen=True)
class SchemaVersion:
    subject: str
    version: int
    id: int
    schema: ParsedSchema
    deleted: bool = False

    def value(self) -> JsonObject:
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.id,
            "schema": self.schema.text,
            "deleted": self.deleted,
        }

    def as_deleted(self) -> SchemaVersion:
        return replace(self, deleted=True)


class RegistryState:
    """Subjects, versions, ids and configs; changed only through `apply`."""

    def __init__(self) -> None:
        self.subjects: dict[str, dict[int, SchemaVersion]] = {}
        self.subject_levels: dict[str, CompatibilityLevel] = {}
        self.global_level: CompatibilityLevel | None = None
        self._by_id: dict[int, ParsedSchema] = {}
        self._id_by_identity: dict[str, int] = {}
        self._max_id = 0

    # -- replay -------------------------------------------------------------------

    def apply(self, key: JsonObject, value: JsonObject | None) -> None:
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(key, value)
        elif keytype == "CONFIG":
            self._apply_config(key, value)
        elif keytype == "DELETE_SUBJECT" and value is not None:
            subject, watermark = str(value["subject"]), int(value["version"])
            for number, version in self.subjects.get(subject, {}).items():
                if number <= watermark:
                    self.subjects[subject][number] = version.as_deleted()

    def _apply_schema(self, key: JsonObject, value: JsonObject | None) -> None:
        subject, number = str(key["subject"]), int(key["version"])
        if value is None:
            removed = self.subjects.get(subject, {}).pop(number, None)
            if subject in self.subjects and not self.subjects[subject]:
                del self.subjects[subject]
            if removed is not None:
                self._forget_unused_id(removed.id)
            return
        if value.get("schemaType", "AVRO") != "AVRO":
            log.warning("skipping %s v%s: only AVRO is served", subject, number)
            return
        try:
            parsed = parse_schema(value["schema"], strict=False)
        except InvalidSchema as exc:
            log.warning("skipping %s v%s: %s", subject, number, exc)
            return
        schema_id = int(value["id"])
        version = SchemaVersion(subject, number, schema_id, parsed, bool(value.get("deleted")))
        self.subjects.setdefault(subject, {})[number] = version
        self._by_id[schema_id] = parsed
        self._id_by_identity.setdefault(parsed.identity, schema_id)
        self._max_id = max(self._max_id, schema_id)

    def _apply_config(self, key: JsonObject, value: JsonObject | None) -> None:
        subject = key.get("subject")
        level_name = None if value is None else value.get("compatibilityLevel")
        level = None if level_name is None else CompatibilityLevel.parse(level_name)
        if subject is None:
            self.global_level = level
        elif level is None:
            self.subject_levels.pop(str(subject), None)
        else:
            self.subject_levels[str(subject)] = level

    def _forget_unused_id(self, schema_id: int) -> None:
        if any(v.id == schema_id for vs in self.subjects.values() for v in vs.values()):
            return
        parsed = self._by_id.pop(schema_id, None)
        if parsed is not None and self._id_by_identity.get(parsed.identity) == schema_id:
            del self._id_by_identity[parsed.identity]

    # -- queries --------------------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> ParsedSchema | None:
        return self._by_id.get(schema_id)

    def id_for(self, schema: ParsedSchema) -> int:
        """The id this schema has anywhere, else the next free one (ids never shrink here)."""
        return self._id_by_identity.get(schema.identity, self._max_id + 1)

    def versions(self, subject: str, *, deleted: bool = False) -> list[SchemaVersion]:
        """Versions of a subject in order; soft-deleted ones only when asked."""
        found = self.subjects.get(subject, {})
        return [found[n] for n in sorted(found) if deleted or not found[n].deleted]

    def subject_names(self, *, deleted: bool = False) -> list[str]:
        return sorted(s for s in self.subjects if self.versions(s, deleted=deleted))

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[SchemaVersion]:
        return [
            v
            for s in sorted(self.subjects)
            for v in self.versions(s, deleted=deleted)
            if v.id == schema_id
        ]
