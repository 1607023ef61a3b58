"""The live board in a real browser: Debian's Chromium, headless, driven by Playwright.

It opens the board of a hotel fed through a real worker, publishes a room, and wants the
event in the live feed within a second of the publish being acknowledged, then the room's
tile and the figures updated; the page is saved to test-artifacts/board.png.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streams.core.kinds import System
from streams.settings import HubSettings
from tests.support.board import Env, running_board
from tests.support.gateway import credentials
from tests.support.hotel import publishers_of

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "board.png"
FEED_WITHIN_S = 1.0


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium "
                    "(apt-get install chromium)")


@pytest.fixture(scope="module")
async def env(hub_settings: HubSettings, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[Env]:
    async with running_board(hub_settings, tmp_path_factory.mktemp("board-browser")) as found:
        yield found


async def test_the_board_in_chromium_shows_a_published_event_within_a_second(env: Env) -> None:
    _require_chromium()
    from playwright.async_api import async_playwright

    hotel = env.hotel
    username, secret = credentials(env.settings, "operator")
    async with async_playwright() as playwright:
        # launch() gives the browser a fresh temporary profile of its own.
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = await browser.new_context(
                http_credentials={"username": username, "password": secret},
                viewport={"width": 1600, "height": 1000})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{env.gateway.url}/board/{hotel.hotel_id}")
            await page.wait_for_selector("#live.on", timeout=15_000)
            assert await page.locator("li.tile").count() == 32
            # The last half hour's events of the hotel are replayed into the feed first.
            await page.wait_for_selector("li.event", timeout=10_000)

            room = {"type": "room", "action": "status_changed", "hotel_id": hotel.hotel_id,
                    "data": {"room_id": "RM-409", "room_number": "409", "room_type": "DBL",
                             "status": "inspected",
                             "availability_date": hotel.today.isoformat(),
                             "base_price": "14500", "currency": "JPY", "version": 1}}
            shown = page.wait_for_selector(
                'li.event:has(.entity:text-is("RM-409"))', timeout=5_000)
            async with publishers_of(env.settings) as publishers:
                published = await publishers[System.HOTEL_PMS].publish_document(room)
                acknowledged = time.monotonic()
                await shown
                elapsed = time.monotonic() - acknowledged
            assert elapsed < FEED_WITHIN_S, f"in the feed {elapsed:.3f} s after the publish"
            item = page.locator(f'li.event[data-event-id="{published.event.event_id}"]')
            assert await item.locator(".kind").text_content() == "room"
            assert await item.locator(".action").text_content() == "status_changed"
            assert await item.locator(".source").text_content() == "hotel-pms"

            # The event asks the panels again: the new room's tile and the figures follow.
            await page.wait_for_selector('li.tile[data-room="409"][data-status="inspected"]',
                                         timeout=10_000)
            want = hotel.expected()
            sellable = want["sellable"] + 1
            occupancy = f"{round(100 * want['occupied'] / sellable, 1):g}%"
            kpi = page.locator('[data-kpi="occupancy"] .kpi-value')
            await page.wait_for_function(
                "want => document.querySelector('[data-kpi=\"occupancy\"] .kpi-value')"
                ".textContent === want", arg=occupancy, timeout=10_000)
            assert await kpi.text_content() == occupancy
            arrivals = await page.locator('[data-kpi="arrivals"] .kpi-value').text_content()
            assert arrivals == f"{want['arrived']} / {want['arrivals_expected']}"
            assert await page.locator('#arrivals tr[data-status="checked_in"]').count() == 4
            assert await page.locator('#departures tr[data-status="checked_out"]').count() == 2
            assert errors == []

            ARTIFACT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACT), full_page=True)
            assert ARTIFACT.stat().st_size > 10_000
        finally:
            await browser.close()
