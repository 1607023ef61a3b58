"""The embedded Confluent-compatible schema registry (Avro only).

Run it with `hotelhub registry up` (or `python -m streams.registry`); talk to it, or
to any Confluent/Redpanda registry, with `streams.wire.registry_client`.
"""

from __future__ import annotations

from streams.registry.compatibility import DEFAULT_LEVEL, CompatibilityLevel
from streams.registry.server import RegistryServer
from streams.registry.service import RegistryStatus, down, status, up

__all__ = [
    "DEFAULT_LEVEL",
    "CompatibilityLevel",
    "RegistryServer",
    "RegistryStatus",
    "down",
    "status",
    "up",
]
