"""Schemathesis fuzzes every operation of the gateway's OpenAPI document, authenticated as a
system and as the operator: no request may yield a 5xx (bad input gets a 4xx naming it)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from streams.settings import HubSettings
from tests.support.gateway import basic, gateway_settings, running_gateway
from tests.support.workers import isolated

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
"""Per operation and phase: about a minute in all on two cores."""


@pytest.mark.parametrize("identity", ["hotel-pms", "operator"])
async def test_no_request_yields_a_server_error(hub_settings: HubSettings, identity: str,
                                                tmp_path: Path, storage_dsn: str) -> None:
    # A whole gateway: its Event Storage too (GET /events), with the schema a sink makes.
    settings = gateway_settings(isolated(hub_settings, f"gw-fuzz-{identity}"),
                                database_url=storage_dsn)
    async with running_gateway(settings) as gateway:
        command = [
            str(Path(sys.executable).parent / "schemathesis"), "run",
            f"{gateway.url}/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"Authorization: {basic(settings, identity)}",
            "--max-examples", str(MAX_EXAMPLES),
            "--request-timeout", "30",
            "--seed", "20261124",
            "--suppress-health-check", "all",
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path)
        output, _ = await asyncio.wait_for(process.communicate(), 600)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "Test cases:" in text and " passed" in text, text[-3000:]
