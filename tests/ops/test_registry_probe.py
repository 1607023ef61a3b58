"""The schema registry probe: up against the session's registry, down (and quick, and quiet)
against a closed port, a port that never answers, and credentials the registry refuses."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from streams.ops.registry_probe import RegistryProbe
from streams.settings import HubSettings
from tests.support.workers import free_port

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.5


def _up() -> float | None:
    return REGISTRY.get_sample_value("hotelhub_schema_registry_up")


def _duration() -> float | None:
    return REGISTRY.get_sample_value("hotelhub_schema_registry_probe_duration_seconds")


def _at(settings: HubSettings, port: int) -> HubSettings:
    return settings.model_copy(update={"schema_registry_url": f"http://127.0.0.1:{port}"})


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


async def test_up_when_the_registry_answers(hub_settings: HubSettings) -> None:
    probe = RegistryProbe(hub_settings, timeout_s=5.0)
    assert await probe.probe() is True
    assert _up() == 1.0 and probe.problem is None
    duration = _duration()
    assert duration is not None and 0 < duration < 5.0


async def test_down_on_a_closed_port_then_up_again(hub_settings: HubSettings) -> None:
    probe = RegistryProbe(_at(hub_settings, free_port()), timeout_s=TIMEOUT_S)
    assert await probe.probe() is False
    assert _up() == 0.0
    assert probe.problem is not None and "unreachable" in probe.problem
    probe.settings = hub_settings
    assert await probe.probe() is True
    assert _up() == 1.0 and probe.problem is None


async def test_down_within_its_timeout_when_nothing_answers(hub_settings: HubSettings,
                                                            silent_port: int) -> None:
    probe = RegistryProbe(_at(hub_settings, silent_port), timeout_s=TIMEOUT_S)
    started = time.monotonic()
    assert await probe.probe() is False
    assert time.monotonic() - started < TIMEOUT_S + 1.0
    assert _up() == 0.0
    duration = _duration()
    assert duration is not None and TIMEOUT_S * 0.9 <= duration < TIMEOUT_S + 1.0


async def test_down_when_the_registry_refuses_the_credentials(hub_settings: HubSettings
                                                              ) -> None:
    if not hub_settings.secured:
        pytest.skip("security is off (HOTELHUB_SECURITY=none): the registry asks no credentials")
    wrong = hub_settings.model_copy(update={"username": "operator.1",
                                            "password": SecretStr("not-the-secret")})
    probe = RegistryProbe(wrong, timeout_s=5.0)
    assert await probe.probe() is False
    assert _up() == 0.0 and probe.problem is not None and "credentials" in probe.problem
    assert "not-the-secret" not in probe.problem
