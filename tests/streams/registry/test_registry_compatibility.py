"""Compatibility decisions and schema identity, pure (no broker, no HTTP)."""

from __future__ import annotations

import json

import pytest

from streams.core.exceptions import RegistryError
from streams.registry.compatibility import (
    CompatibilityLevel,
    compatibility_problems,
    parse_schema,
    versions_to_check,
)
from streams.registry.exceptions import InvalidCompatibilityLevel, InvalidSchema
from tests.streams.registry.conftest import record

NAME = {"name": "name", "type": "string"}
NOTE_REQUIRED = {"name": "note", "type": "string"}
NOTE_OPTIONAL = {"name": "note", "type": ["null", "string"], "default": None}

V1 = parse_schema(record("Guest", NAME))
V2_REQUIRED = parse_schema(record("Guest", NAME, NOTE_REQUIRED))
V2_OPTIONAL = parse_schema(record("Guest", NAME, NOTE_OPTIONAL))


def problems(level: CompatibilityLevel, new_text: str, *old_texts: str) -> list[str]:
    live = [(n, parse_schema(t)) for n, t in enumerate(old_texts, start=1)]
    return compatibility_problems(level, parse_schema(new_text), versions_to_check(level, live))


def test_backward_refuses_new_required_field_and_names_it() -> None:
    found = compatibility_problems(CompatibilityLevel.BACKWARD, V2_REQUIRED, [(1, V1)])
    assert len(found) == 1
    assert "reader_field_missing_default_value" in found[0]
    assert "note" in found[0]
    assert "version 1" in found[0]


def test_backward_accepts_new_optional_field_with_default() -> None:
    assert compatibility_problems(CompatibilityLevel.BACKWARD, V2_OPTIONAL, [(1, V1)]) == []


def test_forward_accepts_new_required_field_but_refuses_dropping_one() -> None:
    # Old readers ignore a field they do not know ...
    assert compatibility_problems(CompatibilityLevel.FORWARD, V2_REQUIRED, [(1, V1)]) == []
    # ... but miss one the new writer no longer sends.
    dropped = compatibility_problems(CompatibilityLevel.FORWARD, V1, [(1, V2_REQUIRED)])
    assert dropped and "cannot read data written with the new schema" in dropped[0]


def test_full_needs_both_directions() -> None:
    assert compatibility_problems(CompatibilityLevel.FULL, V2_OPTIONAL, [(1, V1)]) == []
    assert compatibility_problems(CompatibilityLevel.FULL, V2_REQUIRED, [(1, V1)])


def test_none_accepts_anything() -> None:
    unrelated = parse_schema(json.dumps("long"))
    assert compatibility_problems(CompatibilityLevel.NONE, unrelated, [(1, V1)]) == []


def test_transitive_compares_with_every_version_plain_with_the_latest() -> None:
    # v3 reads v2 (no field a) by its default, but v1 wrote `a` as a string.
    v1 = record("R", {"name": "a", "type": "string"})
    v2 = record("R")
    v3 = record("R", {"name": "a", "type": "int", "default": 0})
    assert problems(CompatibilityLevel.BACKWARD, v3, v1, v2) == []
    found = problems(CompatibilityLevel.BACKWARD_TRANSITIVE, v3, v1, v2)
    assert len(found) == 1 and "version 1" in found[0] and "type_mismatch" in found[0]


def test_type_change_is_a_mismatch() -> None:
    new = record("Guest", {"name": "name", "type": "int"})
    found = problems(CompatibilityLevel.BACKWARD, new, record("Guest", NAME))
    assert found and "type_mismatch" in found[0]


def test_identity_ignores_layout_but_not_defaults() -> None:
    compact = parse_schema(record("Guest", NAME))
    spaced = parse_schema(json.dumps(json.loads(record("Guest", NAME)), indent=4))
    reordered = parse_schema(
        json.dumps({"fields": [{"type": "string", "name": "name"}], "name": "Guest",
                    "namespace": "test", "type": "record"})
    )
    assert compact.identity == spaced.identity == reordered.identity
    assert parse_schema('"string"').identity == parse_schema('{"type": "string"}').identity
    with_default = parse_schema(record("Guest", {**NAME, "default": "anonymous"}))
    assert with_default.identity != compact.identity


@pytest.mark.parametrize(
    "text", ["", "not json", '{"type": "record", "name": "R"}', '{"type": "strin"}', "42"]
)
def test_invalid_schema_is_42201_with_the_parser_message(text: str) -> None:
    with pytest.raises(InvalidSchema) as caught:
        parse_schema(text)
    assert caught.value.error_code == 42201
    assert caught.value.status == 422
    assert isinstance(caught.value, RegistryError)
    assert str(caught.value)


def test_levels_parse_case_insensitively_and_refuse_others() -> None:
    assert CompatibilityLevel.parse("full_transitive") is CompatibilityLevel.FULL_TRANSITIVE
    with pytest.raises(InvalidCompatibilityLevel) as caught:
        CompatibilityLevel.parse("SIDEWAYS")
    assert caught.value.error_code == 42203
