"""Limits a hotel sets on what an event may say, beyond what the contract's types allow.

A stay of 200 years, a negative room rate or a megabyte of maintenance notes are all
valid Avro, yet no front office would take them, and the worker would carry them into
its tables and deltas. `violations` names each such field; the publisher refuses the
event with it (`EventValidationError`) and the hub's rules refuse it (a refusal), so
the same limits hold at both edges. Pure: no Kafka, no settings lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from streams.models import HotelEvent, Reservation

DEFAULT_MAX_STAY_NIGHTS = 366

MONEY_FIELDS = ("total_amount", "base_price", "additional_charges", "total_revenue")
"""Amounts a guest pays or a hotel earns; a refund is its own event, never a negative amount."""

DOCUMENT_FIELDS = frozenset({"detailed_data"})
"""Free-form JSON documents (a report's details), bounded by `max_document_length`."""


@dataclass(frozen=True)
class Limits:
    """What a hotel accepts. Every string is bounded: free text (names, maintenance notes,
    emails) by `max_text_length`, JSON documents by `max_document_length`; lists by
    `max_list_length`."""

    max_stay_nights: int = DEFAULT_MAX_STAY_NIGHTS
    max_text_length: int = 1000
    max_document_length: int = 100_000
    max_list_length: int = 100

    def __post_init__(self) -> None:
        for name in ("max_stay_nights", "max_text_length", "max_document_length",
                     "max_list_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


def violations(event: HotelEvent, limits: Limits) -> dict[str, str]:
    """Field path -> why, for every limit `event` exceeds; {} when it keeps them all.

    Paths are those of `streams.publisher.field_errors` (`data.total_amount`,
    `data.updated_fields.0`), so callers report both kinds of error alike.
    """
    found: dict[str, str] = {}
    _bounded(event, "", limits, found)
    data = event.data
    for name in MONEY_FIELDS:
        amount = getattr(data, name, None)
        if isinstance(amount, Decimal) and amount < 0:
            found[f"data.{name}"] = f"must not be negative ({amount})"
    if isinstance(data, Reservation):
        nights = (data.checkout_date - data.checkin_date).days
        if nights > limits.max_stay_nights:
            found["data.checkout_date"] = (
                f"a stay of {nights} nights is longer than the {limits.max_stay_nights} "
                "a hotel accepts (HOTELHUB_MAX_STAY_NIGHTS)"
            )
    return found


def _bounded(model: BaseModel, prefix: str, limits: Limits, found: dict[str, str]) -> None:
    """Check every string and list of `model` (recursively) against its bound."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        limit = limits.max_document_length if name in DOCUMENT_FIELDS else limits.max_text_length
        if isinstance(value, BaseModel):
            _bounded(value, f"{path}.", limits, found)
        elif isinstance(value, list):
            if len(value) > limits.max_list_length:
                found[path] = f"{len(value)} items; at most {limits.max_list_length}"
            for index, item in enumerate(value):
                _check_text(item, f"{path}.{index}", limit, found)
        else:
            _check_text(value, path, limit, found)


def _check_text(value: Any, path: str, limit: int, found: dict[str, str]) -> None:
    if isinstance(value, str) and len(value) > limit:
        found[path] = f"{len(value)} characters; at most {limit}"


__all__ = ["DEFAULT_MAX_STAY_NIGHTS", "Limits", "violations"]
