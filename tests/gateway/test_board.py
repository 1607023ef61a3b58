"""The live board (`streams.gateway.board`): who may see it, what it shows of a hotel fed by
real events through a real worker, escaping, the worker away, and the `/ws` board token."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from streams.core.kinds import EventKind
from streams.gateway.app import create_app
from streams.gateway.board_tokens import BoardTokens
from streams.gateway.service import Gateway
from streams.settings import HubSettings
from tests.support.board import Env, running_board
from tests.support.events import sample
from tests.support.gateway import credentials, gateway_settings
from tests.support.hotel import new_hotel_id, publishers_of
from tests.support.http import poll
from tests.support.workers import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(hub_settings: HubSettings, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[Env]:
    async with running_board(hub_settings, tmp_path_factory.mktemp("board")) as found:
        yield found


def _client(env: Env, auth: Any = "operator") -> httpx.AsyncClient:
    if auth == "operator":
        return env.gateway.client("operator")
    return httpx.AsyncClient(base_url=env.gateway.url, auth=auth, timeout=30)


async def test_the_board_wants_credentials_that_see_the_hotel(env: Env) -> None:
    path = f"/board/{env.hotel.hotel_id}"
    async with _client(env, None) as anonymous:
        refused = await anonymous.get(path)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="hotelhub"'
        assert env.hotel.hotel_id not in refused.text
        assert (await anonymous.get(path + "/state.json")).status_code == 401
        assert (await anonymous.get(path + "/token")).status_code == 401
        assert (await anonymous.get("/board/board.js")).status_code == 200  # no data in it
    async with _client(env, ("operator.1", "not-the-secret")) as wrong:
        assert (await wrong.get(path)).status_code == 401
    stranger = (env.stranger.username, env.stranger.secret)
    async with _client(env, stranger) as other:
        async def asked(url: str) -> httpx.Response:
            return await other.get(url)

        # The gateway reads a new identity within its store's watch interval.
        forbidden = await poll(lambda: asked(path), lambda answer: answer.status_code != 401,
                               timeout_s=10, what="the new identity known")
        assert forbidden.status_code == 403
        assert env.hotel.hotel_id in forbidden.json()["detail"]
        assert (await other.get(path + "/panels")).status_code == 403
        assert (await other.get(path + "/token")).status_code == 403
        own = await other.get(f"/board/{env.stranger_hotel}")
        assert own.status_code == 200 and "No rooms known" in own.text


def _tiles(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-room="([^"]*)" data-status="([^"]*)"', html))


async def test_rooms_per_floor_stays_and_figures(env: Env) -> None:
    hotel = env.hotel
    async with _client(env) as client:
        async def state_now() -> Any:
            return (await client.get(f"/board/{hotel.hotel_id}/state.json")).json()

        # The refusal is the hub's answer to the last event: it may come a moment later.
        state = await poll(state_now, lambda state: state["kpis"].get("refusals") == 1,
                           timeout_s=20, what="the day's refusal")
        answer = await client.get(f"/board/{hotel.hotel_id}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        html = answer.text
        default = await client.get("/board")
    assert re.findall(r'data-floor="([^"]*)"', html) == ["1", "2", "3", "4"]
    tiles = _tiles(html)
    assert len(tiles) == 32
    assert (tiles["207"], tiles["402"], tiles["305"]) == (
        "out_of_order", "out_of_order", "out_of_service")
    assert {tiles[number] for number in ("101", "102", "103", "203", "301", "302", "104",
                                         "204")} == {"occupied_clean"}
    assert tiles["201"] == tiles["202"] == "vacant_dirty"  # checked out today
    floor_two = html.split('data-floor="2"')[1].split('data-floor="3"')[0]
    assert set(_tiles(floor_two)) == {f"2{index:02d}" for index in range(1, 9)}

    arrivals = html.split('id="arrivals"')[1].split("</section>")[0]
    departures = html.split('id="departures"')[1].split("</section>")[0]
    assert dict(re.findall(r'data-reservation="B-\d{4}-(\d+)" data-status="(\w+)"',
                           arrivals)) == {
        "301": "checked_in", "302": "checked_in", "104": "checked_in", "204": "checked_in",
        "303": "confirmed", "401": "guaranteed", "403": "tentative", "404": "cancelled"}
    assert dict(re.findall(r'data-reservation="B-\d{4}-(\d+)" data-status="(\w+)"',
                           departures)) == {
        "201": "checked_out", "202": "checked_out", "203": "checked_in"}

    want = hotel.expected()
    assert {name: state["kpis"][name] for name in want} == want
    assert state["day"] == hotel.today.isoformat()
    assert state["rooms"]["problem"] is None
    [refusal] = state["refusals"]["items"]
    assert (refusal["reason_code"], refusal["entity_id"]) == (
        "illegal_transition", f"B-{hotel.today:%m%d}-403")
    refusals = html.split('id="refusals"')[1].split("</section>")[0]
    assert "illegal_transition" in refusals and "tentative" in refusals
    occupancy = html.split('data-kpi="occupancy"')[1].split("</div>")[0]
    assert f"{want['occupancy_pct']:g}%" in occupancy
    assert f"{want['occupied']} of {want['sellable']} sellable" in occupancy
    arrived = html.split('data-kpi="arrivals"')[1].split("</div>")[0]
    assert f"{want['arrived']} / {want['arrivals_expected']}" in arrived
    # /board is the default hotel's board, which this worker knows nothing of.
    assert default.status_code == 200
    assert f"<h1>{env.settings.default_hotel_id}</h1>" in default.text


async def test_hostile_values_are_escaped(env: Env) -> None:
    hostile_number = "<script>alert(1)</script>"
    notes = '"><img src=x onerror=alert(2)>'
    system, room = sample(EventKind.ROOM, "RM-evil", room_number=hostile_number,
                          maintenance_notes=notes)
    async with publishers_of(env.settings) as publishers:
        await publishers[system].publish_document({**room, "hotel_id": env.hotel.hotel_id})
    async with _client(env) as client:
        async def page() -> str:
            return (await client.get(f"/board/{env.hotel.hotel_id}")).text

        html = await poll(page, lambda text: "alert(1)" in text, timeout_s=30,
                          what="the hostile room on the board")
        odd = (await client.get("/board/%3Cb%3Eodd")).text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert 'data-floor="other"' in html
    assert "<b>odd" not in odd and "<h1>&lt;b&gt;odd</h1>" in odd


async def test_the_board_renders_with_the_worker_away(env: Env) -> None:
    settings = gateway_settings(env.settings,
                                worker_url=f"http://127.0.0.1:{free_port()}")
    app = create_app(Gateway(settings), manage=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                                 auth=credentials(env.settings, "operator"),
                                 timeout=30) as client:
        answer = await client.get(f"/board/{env.hotel.hotel_id}")
    assert answer.status_code == 200, answer.text
    for panel in ("rooms", "arrivals", "departures"):
        section = answer.text.split(f'id="{panel}"')[1].split("</section>")[0]
        assert "worker unavailable" in section, panel
    assert 'data-kpi="occupancy"><span class="kpi-value">&ndash;' in answer.text


async def _subscribe(env: Env, token: str) -> Any:
    socket = await websockets.connect(f"{env.gateway.ws_url}?board_token={token}")
    await socket.send(json.dumps({"type": "subscribe", "patterns": ["*"]}))
    return socket


async def test_the_websocket_takes_a_fresh_board_token_for_its_hotel_only(env: Env) -> None:
    hotel = env.hotel.hotel_id
    async with _client(env) as client:
        token = (await client.get(f"/board/{hotel}/token")).json()["token"]
    socket = await _subscribe(env, token)
    try:
        first = json.loads(await asyncio.wait_for(socket.recv(), 30))
        assert first["control"] == "subscribed"
        marker = uuid.uuid4().hex[:6]
        async with publishers_of(env.settings) as publishers:
            for hotel_id in (new_hotel_id(), hotel):  # another hotel's first: never shown
                system, room = sample(EventKind.ROOM, f"RM-{marker}", room_number="108")
                await publishers[system].publish_document({**room, "hotel_id": hotel_id})
        message = json.loads(await asyncio.wait_for(socket.recv(), 30))
        assert message["hotelid"] == hotel and message["subject"] == f"RM-{marker}"
    finally:
        await socket.close()


@pytest.mark.parametrize("spoil", ["signature", "expired", "garbage", "other key"])
async def test_a_wrong_or_expired_board_token_is_refused(env: Env, spoil: str) -> None:
    tokens = BoardTokens.for_settings(env.gateway.settings)
    username = credentials(env.settings, "operator")[0]
    token = {
        "signature": tokens.issue(username, env.hotel.hotel_id)[:-4] + "AAAA",
        "expired": tokens.issue(username, env.hotel.hotel_id, now=time.time() - 301),
        "garbage": "not-a-token",
        "other key": BoardTokens(b"k" * 32).issue(username, env.hotel.hotel_id),
    }[spoil]
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{env.gateway.ws_url}?board_token={token}")
    assert refused.value.response.status_code == 401
    body = json.loads(refused.value.response.body)
    assert "board token refused" in body["detail"]
    assert ("expired" in body["detail"]) == (spoil == "expired")


def test_the_static_files_install_with_the_package() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"streams.gateway" = ["static/*"]' in pyproject
    static = Path(__file__).resolve().parents[2] / "streams" / "gateway" / "static"
    assert {path.name for path in static.iterdir()} >= {"board.js", "board.css"}
