"""Per-process services the agents share: one registry client and codec, the rule settings."""

from __future__ import annotations

from functools import lru_cache

from streams.core.rules import RuleSettings
from streams.settings import get_settings
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient


@lru_cache(maxsize=1)
def rule_settings() -> RuleSettings:
    settings = get_settings()
    return RuleSettings(
        timezone=settings.timezone, pms_customer_fields=frozenset(settings.pms_customer_fields),
        overbooking=settings.overbooking, limits=settings.limits(),
        order_grace_s=settings.order_grace_s,
    )


@lru_cache(maxsize=1)
def shared_codec() -> ConfluentAvroCodec:
    """Created on first use, inside the worker's event loop."""
    settings = get_settings()
    return ConfluentAvroCodec(SchemaRegistryClient(settings.registry_url))
