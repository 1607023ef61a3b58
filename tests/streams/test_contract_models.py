"""Each pydantic model mirrors its `.avsc`: same fields, optionality, enums and decimal scales."""

from __future__ import annotations

import json
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from schemas import AVRO_DIR, schema_text
from streams.core.kinds import EventKind
from streams.core.models import CONTRACT_MODELS, EVENT_MODELS

PRIMITIVES: dict[str, set[type]] = {
    "string": {str},
    "boolean": {bool},
    "int": {int},
    "long": {int},
}


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        assert len(rest) == 1
        return rest[0], True
    return annotation, False


def _base(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _decimal_places(field: FieldInfo, annotation: Any) -> int | None:
    for meta in [*field.metadata, *typing.get_args(annotation)[1:]]:
        places = getattr(meta, "decimal_places", None)
        if places is not None:
            return int(places)
        for inner in getattr(meta, "metadata", []) or []:
            if getattr(inner, "decimal_places", None) is not None:
                return int(inner.decimal_places)
    return None


def _compare(avro_type: Any, annotation: Any, field: FieldInfo, path: str) -> None:
    if isinstance(avro_type, list):
        assert avro_type[0] == "null", f"{path}: unions must be [null, T]"
        inner, optional = _strip_optional(annotation)
        assert optional, f"{path}: nullable in Avro but required in the model"
        _compare(avro_type[1], inner, field, path)
        return
    _, optional = _strip_optional(annotation)
    assert not optional, f"{path}: required in Avro but optional in the model"
    raw = annotation
    annotation = _base(annotation)
    if isinstance(avro_type, str):
        assert annotation in PRIMITIVES[avro_type] or (
            typing.get_origin(annotation) is typing.Literal and avro_type == "string"
        ), f"{path}: {avro_type} vs {annotation}"
        return
    logical = avro_type.get("logicalType")
    kind = avro_type["type"]
    if logical == "decimal":
        assert annotation is Decimal, f"{path}: decimal vs {annotation}"
        assert _decimal_places(field, raw) == avro_type["scale"], f"{path}: scale differs"
    elif logical == "date":
        assert annotation is date, path
    elif logical == "timestamp-millis":
        assert annotation is datetime or "AwareDatetime" in str(annotation), path
    elif logical == "uuid":
        assert annotation is UUID, path
    elif kind == "enum":
        if typing.get_origin(annotation) is typing.Literal:
            values = {str(arg) for arg in typing.get_args(annotation)}
            assert values <= set(avro_type["symbols"]), path
        else:
            assert issubclass(annotation, Enum), f"{path}: enum vs {annotation}"
            assert [member.value for member in annotation] == avro_type["symbols"], path
    elif kind == "array":
        assert typing.get_origin(annotation) is list, path
        _compare(avro_type["items"], typing.get_args(annotation)[0], field, f"{path}[]")
    elif kind == "record":
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), path
        _compare_record(avro_type, annotation, path)
    else:
        _compare(kind, annotation, field, path)


def _compare_record(record: dict[str, Any], model: type[BaseModel], path: str) -> None:
    avro_fields = {field["name"]: field for field in record["fields"]}
    assert set(avro_fields) == set(model.model_fields), (
        f"{path}: only in avsc {set(avro_fields) - set(model.model_fields)}, "
        f"only in model {set(model.model_fields) - set(avro_fields)}"
    )
    for name, avro_field in avro_fields.items():
        info = model.model_fields[name]
        annotation = typing.get_type_hints(model, include_extras=True)[name]
        _compare(avro_field["type"], annotation, info, f"{path}.{name}")
        if "default" in avro_field:
            assert not info.is_required(), f"{path}.{name}: has an Avro default, model requires it"


@pytest.mark.parametrize("contract", list(CONTRACT_MODELS))
def test_model_mirrors_contract(contract: str) -> None:
    _compare_record(json.loads(schema_text(contract)), CONTRACT_MODELS[contract], contract)


def test_every_contract_file_has_a_model() -> None:
    assert {path.stem for path in AVRO_DIR.glob("*.avsc")} == set(CONTRACT_MODELS)


def test_the_check_catches_drift() -> None:
    record = json.loads(schema_text(EventKind.ROOM))
    record["fields"][-1]["type"]["fields"].append({"name": "floor", "type": "int"})
    with pytest.raises(AssertionError, match="floor"):
        _compare_record(record, EVENT_MODELS[EventKind.ROOM], "room")
