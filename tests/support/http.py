"""Asking the workers' HTTP queries from tests: one answer, or poll until an answer is right."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def served_by(self) -> str | None:
        return self.headers.get("X-Hotelhub-Served-By")


async def get(session: aiohttp.ClientSession, url: str, *, timeout_s: float = 15) -> Answer:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return Answer(response.status, body, dict(response.headers))


async def get_or_none(session: aiohttp.ClientSession, url: str) -> Answer | None:
    """None while nothing listens yet (a worker starting)."""
    try:
        return await get(session, url, timeout_s=5)
    except (aiohttp.ClientConnectionError, TimeoutError):
        return None


async def poll(ask: Callable[[], Awaitable[T]], done: Callable[[T], bool], *,
               timeout_s: float, interval_s: float = 0.2, what: str = "an answer") -> T:
    """Ask until `done(answer)`; fail with the last answer after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await ask()
        if done(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s; last: {answer!r}")
        await asyncio.sleep(interval_s)


def floats_in(value: Any, path: str = "$") -> list[str]:
    """Paths of every float in a JSON document (money and dates must be strings)."""
    if isinstance(value, float):
        return [path]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in floats_in(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for index, item in enumerate(value)
                for found in floats_in(item, f"{path}[{index}]")]
    return []


def money(value: Any) -> Decimal:
    """A decimal sent as a string; anything else is a failure."""
    assert isinstance(value, str), f"money must travel as a string, got {value!r}"
    return Decimal(value)
