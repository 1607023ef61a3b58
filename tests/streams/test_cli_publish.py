"""`hotelhub publish`: bad input names every bad field and sends nothing; good input lands."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.core.kinds import EventKind
from streams.runners.admin import ensure_topics
from streams.settings import HubSettings
from tests.support.events import sample


@pytest.fixture
def hub_topics(hub_settings: HubSettings) -> HubSettings:
    """The session's hub topics exist: brokers here create none on first publish."""
    asyncio.run(ensure_topics(hub_settings))
    return hub_settings




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
                                   hub_topics: HubSettings) -> None:
    hub_settings = hub_topics
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", hub_settings.bootstrap_servers)
    settings_from_env.setenv("SCHEMA_REGISTRY_URL", hub_settings.registry_url)
    lines = "\n".join(json.dumps(sample(EventKind.ROOM, f"R-cli-{n}")[1]) for n in range(3))
    result = CliRunner().invoke(app, ["publish", "-", "--system", "hotel-pms"], input=lines)
    assert result.exit_code == 0, result.output
    published = [json.loads(line) for line in result.output.splitlines()]
    assert [p["topic"] for p in published] == [hub_settings.topic("hotel.room")] * 3
    assert all(p["offset"] >= 0 for p in published)


# -- bad input at the edge: one line, non-zero exit, nothing sent ---------------------------


def assert_one_line_error(result: Any, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not a traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], result.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        (b"", "is empty"),
        (b" \n\t\n", "is empty"),
        (b'{"type": "room", "data": "\xff\xfe"}', "is not UTF-8"),
        (b"[]", "no events"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"version": 1' + b"0" * 5000 + b"}", "not JSON"),
        (b"42", "not an object"),
    ],
    ids=["missing", "empty", "blank", "not-utf8", "empty-list", "deep", "huge-int", "scalar"],
)
def test_unreadable_input_is_one_line_and_a_nonzero_exit(
    settings_from_env: pytest.MonkeyPatch, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    path = tmp_path / "events.json"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(app, ["publish", str(path), "--system", "hotel-pms"])
    assert_one_line_error(result, expected)


def test_empty_stdin_is_one_line(settings_from_env: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(app, ["publish", "-"], input="")
    assert_one_line_error(result, "stdin is empty")


def test_a_utf8_bom_is_fine(settings_from_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Validation fails on purpose (bad status), which shows the file was read and parsed.
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    _, room = sample(EventKind.ROOM, status="broken")
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(room).encode())
    result = CliRunner().invoke(app, ["publish", str(path), "--system", "hotel-pms"])
    assert result.exit_code == 2 and "#0.data.status" in result.output


@pytest.mark.parametrize(
    ("data", "field"),
    [({"version": 2**63}, "#1.data.version"),
     ({"checkin_date": "2026-01-01", "checkout_date": "2227-01-01"}, "#1.data.checkout_date"),
     ({"total_amount": "-1"}, "#1.data.total_amount")],
    ids=["version-2^63", "200-year-stay", "negative-amount"],
)
def test_out_of_range_values_are_field_errors_before_anything_is_sent(
    settings_from_env: pytest.MonkeyPatch, data: dict[str, Any], field: str
) -> None:
    # No broker answers: the error must come from validation, before any connection.
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    good = sample(EventKind.RESERVATION, "B-ok")[1]
    bad = sample(EventKind.RESERVATION, "B-bad", **data)[1]
    result = CliRunner().invoke(app, ["publish", "-", "--system", "hotel-saas"],
                                input=json.dumps([good, bad]))
    assert result.exit_code == 2, result.output
    assert "none sent" in result.output and field in result.output
    assert "Traceback" not in result.output and "OverflowError" not in result.output


def test_a_hotel_id_with_the_key_separator_is_a_field_error(
    settings_from_env: pytest.MonkeyPatch,
) -> None:
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    _, room = sample(EventKind.ROOM)
    result = CliRunner().invoke(app, ["publish", "-", "--system", "hotel-pms"],
                                input=json.dumps({**room, "hotel_id": "TKY:R1"}))
    assert result.exit_code == 2
    assert "#0.hotel_id" in result.output and "hotel_id:entity_id" in result.output


@pytest.mark.integration
def test_publishing_a_file_again_repeats_its_event_ids(
    settings_from_env: pytest.MonkeyPatch, hub_topics: HubSettings, tmp_path: Path
) -> None:
    """A retried publish (after a timeout, say) sends the same events, not new ones."""
    hub_settings = hub_topics
    settings_from_env.setenv("KAFKA_BOOTSTRAP_SERVERS", hub_settings.bootstrap_servers)
    settings_from_env.setenv("SCHEMA_REGISTRY_URL", hub_settings.registry_url)
    stated = str(uuid.uuid4())
    documents = [sample(EventKind.ROOM, f"R-again-{n}")[1] for n in range(3)]
    documents.append({**sample(EventKind.ROOM, "R-again-stated")[1], "event_id": stated})
    path = tmp_path / "rooms.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in documents))

    def published_ids() -> list[str]:
        result = CliRunner().invoke(app, ["publish", str(path), "--system", "hotel-pms"])
        assert result.exit_code == 0, result.output
        return [json.loads(line)["event_id"] for line in result.output.splitlines()]

    first = published_ids()
    assert len(set(first)) == 4 and first[3] == stated
    assert published_ids() == first
