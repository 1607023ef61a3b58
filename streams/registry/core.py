"""What the registry does, independent of HTTP and of where records are kept.

Every change is written to the log first and applied to memory only once the log
acknowledged it, so memory never shows what a restart would not replay. One writer
per topic is assumed (no leader election, unlike Confluent's cluster mode); a lock
orders our own concurrent requests, so two registrations of one schema get one id.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from streams.core.exceptions import RegistryError
from streams.registry.compatibility import (
    DEFAULT_LEVEL,
    CompatibilityLevel,
    ParsedSchema,
    compatibility_problems,
    parse_schema,
    versions_to_check,
)
from streams.registry.exceptions import (
    IncompatibleSchema,
    InvalidVersion,
    SchemaNotFound,
    StoreError,
    SubjectLevelConfigNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from streams.registry.state import (
    JsonObject,
    RegistryState,
    SchemaVersion,
    config_key,
    config_value,
    delete_subject_key,
    schema_key,
)

MAX_VERSION = 2**31 - 1


class RecordLog(Protocol):
    """Durable, ordered storage of registry records (the `_schemas` topic in production)."""

    async def append(self, key: JsonObject, value: JsonObject | None) -> None:
        """Return only once the record is durable; raise on failure."""
        ...


def parse_version(text: str) -> int | None:
    """`latest` (or Confluent's `-1`) is None; otherwise a number in [1, 2^31-1] or 42202."""
    if text in ("latest", "-1"):
        return None
    try:
        number = int(text)
    except ValueError:
        raise InvalidVersion(text) from None
    if not 1 <= number <= MAX_VERSION:
        raise InvalidVersion(text)
    return number


class SchemaRegistry:
    """Subjects, versions, global ids and compatibility levels over a `RecordLog`."""

    def __init__(self, log: RecordLog, state: RegistryState | None = None) -> None:
        self.state = state or RegistryState()
        self._log = log
        self._lock = asyncio.Lock()

    async def _write(self, key: JsonObject, value: JsonObject | None) -> None:
        try:
            await self._log.append(key, value)
        except RegistryError:
            raise
        except Exception as exc:
            raise StoreError(f"Error while writing to the schema store: {exc}") from exc
        self.state.apply(key, value)

    # -- reads ---------------------------------------------------------------------

    def level(self, subject: str | None = None) -> CompatibilityLevel:
        """The level that applies: the subject's, else the global one, else our default."""
        if subject is not None and subject in self.state.subject_levels:
            return self.state.subject_levels[subject]
        return self.state.global_level or DEFAULT_LEVEL

    def subject_level(self, subject: str, *, default_to_global: bool) -> CompatibilityLevel:
        if subject in self.state.subject_levels:
            return self.state.subject_levels[subject]
        if default_to_global:
            return self.level()
        raise SubjectLevelConfigNotFound(subject)

    def live_versions(self, subject: str, *, deleted: bool = False) -> list[SchemaVersion]:
        """Versions of an existing subject; 40401 when it has none to show."""
        found = self.state.versions(subject, deleted=deleted)
        if not found:
            raise SubjectNotFound(subject)
        return found

    def get_version(self, subject: str, version: str, *, deleted: bool = False) -> SchemaVersion:
        number = parse_version(version)
        found = self.live_versions(subject, deleted=deleted)
        if number is None:
            return found[-1]
        for candidate in found:
            if candidate.version == number:
                return candidate
        raise VersionNotFound(number)

    def schema_by_id(self, schema_id: int) -> ParsedSchema:
        parsed = self.state.schema_by_id(schema_id)
        if parsed is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return parsed

    def lookup(self, subject: str, schema_text: object, *, deleted: bool = False) -> SchemaVersion:
        """The version under `subject` holding this schema (40401 / 40403 otherwise)."""
        parsed = parse_schema(schema_text)
        for candidate in reversed(self.live_versions(subject, deleted=deleted)):
            if candidate.schema.identity == parsed.identity:
                return candidate
        raise SchemaNotFound()

    def check(self, subject: str, schema_text: object, version: str | None) -> list[str]:
        """Compatibility problems of a candidate; empty means compatible.

        `version=None` checks what registration would check (every live version for a
        transitive level); a version (or `latest`) checks that one version only, in the
        direction(s) the subject's level asks for, as Confluent does.
        """
        parsed = parse_schema(schema_text)
        level = self.level(subject)
        live = [(v.version, v.schema) for v in self.live_versions(subject)]
        if version is None:
            previous = versions_to_check(level, live)
        else:
            chosen = self.get_version(subject, version)
            previous = [(chosen.version, chosen.schema)]
        return compatibility_problems(level, parsed, previous)

    # -- writes --------------------------------------------------------------------

    async def register(self, subject: str, schema_text: object) -> SchemaVersion:
        """Register (idempotent: a schema already live under the subject keeps its version)."""
        parsed = parse_schema(schema_text)
        async with self._lock:
            live = self.state.versions(subject)
            for existing in live:
                if existing.schema.identity == parsed.identity:
                    return existing
            level = self.level(subject)
            problems = compatibility_problems(
                level, parsed, versions_to_check(level, [(v.version, v.schema) for v in live])
            )
            if problems:
                raise IncompatibleSchema(subject, problems)
            every = self.state.versions(subject, deleted=True)
            number = every[-1].version + 1 if every else 1
            created = SchemaVersion(subject, number, self.state.id_for(parsed), parsed)
            await self._write(schema_key(subject, number), created.value())
            return created

    async def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        """Soft delete (versions kept, hidden) or, after that, permanent delete (tombstones)."""
        async with self._lock:
            every = self.state.versions(subject, deleted=True)
            if not every:
                raise SubjectNotFound(subject)
            live = [v for v in every if not v.deleted]
            if permanent:
                if live:
                    raise SubjectNotSoftDeleted(subject)
                for version in every:
                    await self._write(schema_key(subject, version.version), None)
                if subject in self.state.subject_levels:
                    await self._write(config_key(subject), None)
                return [v.version for v in every]
            if not live:
                raise SubjectSoftDeleted(subject)
            for version in live:
                key = schema_key(subject, version.version)
                await self._write(key, version.as_deleted().value())
            await self._write(
                delete_subject_key(subject), {"subject": subject, "version": live[-1].version}
            )
            return [v.version for v in live]

    async def delete_version(self, subject: str, version: str, *, permanent: bool) -> int:
        number = parse_version(version)
        async with self._lock:
            every = self.state.versions(subject, deleted=True)
            if not every:
                raise SubjectNotFound(subject)
            if number is None:
                pool = every if permanent else [v for v in every if not v.deleted]
                if not pool:
                    raise SubjectSoftDeleted(subject)
                number = pool[-1].version
            target = next((v for v in every if v.version == number), None)
            if target is None:
                raise VersionNotFound(number)
            if permanent:
                if not target.deleted:
                    raise VersionNotSoftDeleted(subject, number)
                await self._write(schema_key(subject, number), None)
            else:
                if target.deleted:
                    raise VersionSoftDeleted(subject, number)
                await self._write(schema_key(subject, number), target.as_deleted().value())
            return number

    async def set_level(self, level: CompatibilityLevel, subject: str | None = None) -> None:
        async with self._lock:
            await self._write(config_key(subject), config_value(level, subject))

    async def delete_level(self, subject: str | None = None) -> CompatibilityLevel:
        """Drop a subject's level (or reset the global one); returns the level it had."""
        async with self._lock:
            if subject is None:
                old = self.level()
                if self.state.global_level is not None:
                    await self._write(config_key(None), None)
                return old
            if subject not in self.state.subject_levels:
                if not self.state.versions(subject, deleted=True):
                    raise SubjectNotFound(subject)
                raise SubjectLevelConfigNotFound(subject)
            old = self.state.subject_levels[subject]
            await self._write(config_key(subject), None)
            return old

