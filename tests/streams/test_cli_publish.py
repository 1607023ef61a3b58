"""`hotelhub publish`: bad input names every bad field and sends nothing; good input lands."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.kinds import EventKind
from streams.settings import HubSettings, get_settings
from tests.support.events import sample


@pytest.fixture
def settings_from_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Each invocation reads the environment afresh; the cache is restored afterwards."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_bad_events_name_their_fields_and_nothing_is_sent(
    settings_from_env: pytest.MonkeyPatch,
) -> None:
    # No broker answers here: validation must fail before anything connects.
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    _, good = sample(EventKind.ROOM)
    bad = {**good, "data": {**good["data"], "status": "broken", "base_price": 15800.5}}
    result = CliRunner().invoke(app, ["publish", "-", "--system", "hotel-pms"],
                                input=json.dumps([good, bad]))
    assert result.exit_code == 2
    assert "none sent" in result.output
    assert "#1.data.status" in result.output and "#1.data.base_price" in result.output
    assert "#0." not in result.output


def test_a_forbidden_publisher_is_told_so(settings_from_env: pytest.MonkeyPatch) -> None:
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    _, room = sample(EventKind.ROOM)
    result = CliRunner().invoke(app, ["publish", "-", "--system", "hotel-saas"],
                                input=json.dumps(room))
    assert result.exit_code == 2
    assert "hotel-saas may not publish room events" in result.output


def test_not_json_is_a_clear_error(settings_from_env: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(app, ["publish", "-"], input="{not json")
    assert result.exit_code == 2
    assert "not JSON" in result.output


@pytest.mark.integration
def test_good_events_are_published(settings_from_env: pytest.MonkeyPatch,
                                   hub_settings: HubSettings) -> None:
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", hub_settings.bootstrap_servers)
    settings_from_env.setenv("SCHEMA_REGISTRY_URL", hub_settings.registry_url)
    lines = "\n".join(json.dumps(sample(EventKind.ROOM, f"R-cli-{n}")[1]) for n in range(3))
    result = CliRunner().invoke(app, ["publish", "-", "--system", "hotel-pms"], input=lines)
    assert result.exit_code == 0, result.output
    published = [json.loads(line) for line in result.output.splitlines()]
    assert [p["topic"] for p in published] == [hub_settings.topic("hotel.room")] * 3
    assert all(p["offset"] >= 0 for p in published)
