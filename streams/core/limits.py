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

from pydantic import BaseModel

from streams.core.models import HotelEvent, Reservation

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

    Paths are those of `streams.runners.publisher.field_errors` (`data.total_amount`,
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
    """Check every string and list of `model` (recursively) against its bound.

    On the publisher's and the hub's hot path: paths are built only for what is wrong.
    """
    for name, value in model.__dict__.items():
        if isinstance(value, str):
            limit = _limit(name, limits)
            if len(value) > limit:
                found[prefix + name] = f"{len(value)} characters; at most {limit}"
        elif isinstance(value, BaseModel):
            _bounded(value, f"{prefix}{name}.", limits, found)
        elif isinstance(value, list):
            if len(value) > limits.max_list_length:
                found[prefix + name] = f"{len(value)} items; at most {limits.max_list_length}"
            limit = _limit(name, limits)
            for index, item in enumerate(value):
                if isinstance(item, str) and len(item) > limit:
                    found[f"{prefix}{name}.{index}"] = f"{len(item)} characters; at most {limit}"


def _limit(name: str, limits: Limits) -> int:
    return limits.max_document_length if name in DOCUMENT_FIELDS else limits.max_text_length


__all__ = ["DEFAULT_MAX_STAY_NIGHTS", "Limits", "violations"]
