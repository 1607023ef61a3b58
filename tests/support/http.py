"""Asking the workers' HTTP queries from tests: one answer, or poll until an answer is right.

With security on, the query API wants HTTP Basic credentials: `get` sends the operator's
(an identity that sees every hotel) from the test session's secret files unless told
otherwise; `auth=None` sends none, a `BasicAuth` those credentials.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar

import aiohttp
from aiohttp import hdrs

from streams.core.identities import (
    Identity,
    IdentityStore,
    IssuedSecret,
    Role,
    new_credential,
    without_credential,
)
from streams.settings import HubSettings, get_settings
from streams.worker.auth import authorization

T = TypeVar("T")
DEFAULT_IDENTITY: Final = "operator"
Auth = aiohttp.BasicAuth | str | None
"""Credentials to send: as given, an identity's name (its secret file), or none."""


def _headers(auth: Auth) -> dict[str, str]:
    """The Authorization header `auth` stands for: an identity's is read from the session's
    secret files at each call (`streams.worker.auth.authorization`), so a rotation counts."""
    if isinstance(auth, str):
        return authorization(get_settings().as_identity(auth))
    return {} if auth is None else {hdrs.AUTHORIZATION: auth.encode()}


def as_basic_auth(issued: IssuedSecret) -> aiohttp.BasicAuth:
    return aiohttp.BasicAuth(issued.username, issued.secret)


@contextmanager
def query_identity(settings: HubSettings, *hotels: str, role: Role = Role.SYSTEM,
                   name: str | None = None) -> Iterator[IssuedSecret]:
    """A system of this test's own that may query `hotels` (`*`: all), in the store the
    workers of `settings` watch; removed, with its secret files, on the way out."""
    name = name or f"query-test-{uuid.uuid4().hex[:8]}"
    with IdentityStore(settings.identities_path).editing() as store:
        identity, issued = new_credential(Identity(name, role, hotels=hotels),
                                          settings.secrets_dir)
        store.put(identity)
    try:
        yield issued
    finally:
        with IdentityStore(settings.identities_path).editing() as store:
            found = store.get(name)
            if found is not None:
                for username in found.usernames:
                    found = without_credential(found, username, settings.secrets_dir)
                store.remove(name)


def rotate(settings: HubSettings, name: str) -> IssuedSecret:
    """A second credential for identity `name`: both valid until the old one is revoked."""
    with IdentityStore(settings.identities_path).editing() as store:
        identity, issued = new_credential(store.require(name), settings.secrets_dir)
        store.put(identity)
    return issued


def revoke(settings: HubSettings, name: str, username: str) -> None:
    with IdentityStore(settings.identities_path).editing() as store:
        store.put(without_credential(store.require(name), username, settings.secrets_dir))


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def served_by(self) -> str | None:
        return self.headers.get("X-Hotelhub-Served-By")


async def get(session: aiohttp.ClientSession, url: str, *, timeout_s: float = 15,
              auth: Auth = DEFAULT_IDENTITY) -> Answer:
    async with session.get(url, headers=_headers(auth),
                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return Answer(response.status, body, dict(response.headers))


async def get_or_none(session: aiohttp.ClientSession, url: str, *,
                      auth: Auth = DEFAULT_IDENTITY) -> Answer | None:
    """None while nothing listens yet (a worker starting)."""
    try:
        return await get(session, url, timeout_s=5, auth=auth)
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
