"""The worker's consumer groups use the hub's session timeout, not Faust's 60 s: a worker
restarted after a crash waits that long for its dead predecessor's partitions
(bench.worker_recovery measures the restart)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.runners.supervised import group_consumer
from streams.settings import HubSettings
from streams.worker.app import faust_options


def test_defaults_leave_room_for_the_30_s_recovery_goal() -> None:
    settings = HubSettings()
    assert settings.consumer_session_timeout_s == 10.0
    assert settings.consumer_heartbeat_interval_s == 3.0


async def test_faust_and_the_runners_use_the_settings(hub_settings: HubSettings) -> None:
    settings = hub_settings.model_copy(update={"consumer_session_timeout_s": 12.0,
                                               "consumer_heartbeat_interval_s": 2.5})
    options = faust_options(settings)
    assert (options["broker_session_timeout"], options["broker_heartbeat_interval"]) == (12.0, 2.5)
    consumer = group_consumer(settings, "session-test")  # built, never started
    assert (consumer._session_timeout_ms, consumer._heartbeat_interval_ms) == (12_000, 2_500)
    # A runner's own options still win (the processor passes its fetch settings this way).
    tuned = group_consumer(settings, "session-test", session_timeout_ms=20_000)
    assert tuned._session_timeout_ms == 20_000


def test_heartbeats_must_fit_three_times_in_a_session() -> None:
    with pytest.raises(ValidationError, match=r"consumer_heartbeat_interval_s \(4 s\) must be "
                                              r"at most a third of consumer_session_timeout_s "
                                              r"\(10 s\)"):
        HubSettings(consumer_session_timeout_s=10, consumer_heartbeat_interval_s=4)


def test_session_below_the_brokers_minimum_is_refused() -> None:
    with pytest.raises(ValidationError, match="consumer_session_timeout_s"):
        HubSettings(consumer_session_timeout_s=5)
