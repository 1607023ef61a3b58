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
from streams.registry.server import REGISTRY_IDENTITY
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
    """True when `GET /` answers 200, or 401 from a registry that wants credentials: it
    serves, and liveness needs no secret (so `status` works for anyone)."""
    base, auth = split_credentials(url.rstrip("/"))
    try:
        answer = httpx.get(f"{base}/", auth=auth, timeout=timeout_s).status_code
    except (httpx.HTTPError, httpx.InvalidURL, ValueError):
        return False
    return answer in (200, 401)


def status(settings: HubSettings | None = None) -> RegistryStatus:
    settings = settings or get_settings()
    shown = settings.registry_url_redacted
    if not settings.uses_embedded_registry:
        return RegistryStatus(shown, True, None, healthy(settings.registry_url))
    pid = daemon(settings).pid()
    return RegistryStatus(shown, False, pid, pid is not None and healthy(settings.registry_url))


def _child_env(settings: HubSettings, identity: str = REGISTRY_IDENTITY) -> dict[str, str]:
    """Pass the caller's settings explicitly, so `up` honours a HubSettings built in code.

    Security travels as where the identity store and secret files are, never as a secret:
    the registry reads its Kafka identity's own secret file there.
    """
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "HOTELHUB_HOME": str(settings.home),
        "HOTELHUB_REGISTRY_PORT": str(settings.registry_port),
        "HOTELHUB_REGISTRY_TOPIC": settings.registry_topic,
        "HOTELHUB_REPLICATION_FACTOR": str(settings.replication_factor),
        "HOTELHUB_PUBLISH_TIMEOUT_S": str(settings.publish_timeout_s),
        "HOTELHUB_SECURITY": settings.security,
        "HOTELHUB_IDENTITY": identity,
        "HOTELHUB_SECURITY_DIR": str(settings.identities_path.parent),
    }
    if settings.kafka_ssl_cafile is not None:
        env["HOTELHUB_KAFKA_SSL_CAFILE"] = str(settings.kafka_ssl_cafile)
    return env


def up(
    settings: HubSettings | None = None,
    *,
    timeout_s: float = 60.0,
    identity: str = REGISTRY_IDENTITY,
) -> RegistryStatus:
    """Start the embedded registry unless it runs; return once `GET /` answers.

    `identity` is who it is on Kafka: `schema-registry`, whom the ACLs let own the
    registry topic; a test's registry on a topic of its own may be another.
    """
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
        env=_child_env(settings, identity),
    )
    return status(settings)


def down(settings: HubSettings | None = None, *, timeout_s: float = 30.0) -> bool:
    """Stop the registry this hub started (by its pid file); False if none ran or external."""
    settings = settings or get_settings()
    if not settings.uses_embedded_registry:
        return False
    return daemon(settings).stop(timeout_s=timeout_s)
