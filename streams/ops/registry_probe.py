"""Is the schema registry answering this process? Exported for the alert that asks.

A worker or gateway whose registry is gone keeps running on the schemas it has cached,
then fails on the first new id; the probe says so before that. It asks for the global
compatibility level (`GET /config`: small, read-only, open to every identity) with the
process's own credentials, so a registry that answers but refuses them counts as down too.
`RegistryProbe.probe` never raises: a Faust timer or the gateway's loop runs it periodically.
"""

from __future__ import annotations

import asyncio
import logging
import time

from streams.ops.metrics import schema_registry_probe_duration_seconds, schema_registry_up
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
PROBE_EVERY_S = 15.0


class RegistryProbe:
    """Sets `hotelhub_schema_registry_up` from one short request per `probe` call."""

    def __init__(self, settings: HubSettings, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.problem: str | None = None
        """Why the last probe failed, or None when it was answered."""

    async def probe(self, *_: object) -> bool:
        """Ask the registry once and set the gauges; True when it answered.

        Takes and ignores any arguments, so it can be a Faust timer (which passes the app).
        A change between up and down is logged once, not at every probe.
        """
        started = time.monotonic()
        problem: str | None = None
        try:
            async with SchemaRegistryClient.from_settings(
                    self.settings, timeout_s=self.timeout_s) as registry:
                await asyncio.wait_for(registry.get_compatibility(), self.timeout_s)
        except TimeoutError:
            problem = f"no answer within {self.timeout_s:g} s"
        except Exception as exc:  # anything (refused, 401, bad secret file) means "down"
            problem = str(exc) or exc.__class__.__name__
        schema_registry_probe_duration_seconds.set(time.monotonic() - started)
        schema_registry_up.set(0 if problem else 1)
        if problem != self.problem:
            if problem is None:
                log.info("schema registry at %s answers again", self.settings.registry_url_redacted)
            else:
                log.warning("schema registry at %s does not answer: %s",
                            self.settings.registry_url_redacted, problem)
        self.problem = problem
        return problem is None
