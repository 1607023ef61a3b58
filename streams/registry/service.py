"""Start, stop and inspect the embedded registry as a detached process.

When `SCHEMA_REGISTRY_URL` names an external registry the hub does not manage it:
`up` and `down` report that and change nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import httpx

from streams.core.exceptions import EmbeddedServiceError
from streams.ops.processes import Daemon
from streams.settings import HubSettings, get_settings, redacted_url
from streams.wire.registry_client import split_credentials


@dataclass(frozen=True)
class RegistryStatus:
    url: str
    """Redacted (`redacted_url`): a status is for printing."""
    external: bool
    pid: int | None
    healthy: bool

    @property
    def running(self) -> bool:
        return self.pid is not None

    def describe(self) -> str:
        if self.external:
            state = "answers" if self.healthy else "does not answer"
            return f"external schema registry at {self.url} (SCHEMA_REGISTRY_URL) {state}"
        if self.pid is None:
            return f"embedded schema registry is not running (would serve {self.url})"
        state = "healthy" if self.healthy else "not answering yet"
        return f"embedded schema registry pid {self.pid} at {self.url}: {state}"


def daemon(settings: HubSettings) -> Daemon:
    directory = settings.home / "registry"
    return Daemon("schema registry", directory / "registry.pid", directory / "registry.log")


def healthy(url: str, *, timeout_s: float = 1.0) -> bool:
    """True when `GET /` answers 200 (what Confluent's clients treat as alive)."""
    base, auth = split_credentials(url.rstrip("/"))
    try:
        return httpx.get(f"{base}/", auth=auth, timeout=timeout_s).status_code == 200
    except (httpx.HTTPError, httpx.InvalidURL, ValueError):
        return False


def status(settings: HubSettings | None = None) -> RegistryStatus:
    settings = settings or get_settings()
    shown = settings.registry_url_redacted
    if not settings.uses_embedded_registry:
        return RegistryStatus(shown, True, None, healthy(settings.registry_url))
    pid = daemon(settings).pid()
    return RegistryStatus(shown, False, pid, pid is not None and healthy(settings.registry_url))


def _child_env(settings: HubSettings) -> dict[str, str]:
    """Pass the caller's settings explicitly, so `up` honours a HubSettings built in code."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "HOTELHUB_HOME": str(settings.home),
        "HOTELHUB_REGISTRY_PORT": str(settings.registry_port),
        "HOTELHUB_REGISTRY_TOPIC": settings.registry_topic,
        "HOTELHUB_REPLICATION_FACTOR": str(settings.replication_factor),
        "HOTELHUB_PUBLISH_TIMEOUT_S": str(settings.publish_timeout_s),
    }


def up(settings: HubSettings | None = None, *, timeout_s: float = 60.0) -> RegistryStatus:
    """Start the embedded registry unless it runs; return once `GET /` answers."""
    settings = settings or get_settings()
    current = status(settings)
    if current.external or current.running:
        return current
    if healthy(settings.registry_url):
        raise EmbeddedServiceError(
            f"something not started by `hotelhub registry up` already serves "
            f"{redacted_url(settings.registry_url)}; stop it or set HOTELHUB_REGISTRY_PORT"
        )
    daemon(settings).start(
        [sys.executable, "-m", "streams.registry"],
        ready=lambda: healthy(settings.registry_url),
        timeout_s=timeout_s,
        env=_child_env(settings),
    )
    return status(settings)


def down(settings: HubSettings | None = None, *, timeout_s: float = 30.0) -> bool:
    """Stop the registry this hub started (by its pid file); False if none ran or external."""
    settings = settings or get_settings()
    if not settings.uses_embedded_registry:
        return False
    return daemon(settings).stop(timeout_s=timeout_s)
