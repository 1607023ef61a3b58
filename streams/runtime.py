"""Per-process services the agents share: one registry client, one codec."""

from __future__ import annotations

from functools import lru_cache

from streams.codec import ConfluentAvroCodec
from streams.registry_client import SchemaRegistryClient
from streams.settings import get_settings


@lru_cache(maxsize=1)
def shared_codec() -> ConfluentAvroCodec:
    """Created on first use, inside the worker's event loop."""
    settings = get_settings()
    return ConfluentAvroCodec(SchemaRegistryClient(settings.registry_url))
