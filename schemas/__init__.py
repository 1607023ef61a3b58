"""The Avro contracts, one `.avsc` per event kind, shipped with the package."""

from __future__ import annotations

from pathlib import Path

AVRO_DIR = Path(__file__).parent / "avro"


def schema_path(kind: str) -> Path:
    """Path of the contract for an event kind (`reservation` -> `avro/reservation.avsc`)."""
    return AVRO_DIR / f"{kind}.avsc"


def schema_text(kind: str) -> str:
    return schema_path(kind).read_text(encoding="utf-8")


__all__ = ["AVRO_DIR", "schema_path", "schema_text"]
