"""Who may ask the query API (`streams.worker.auth`): credentials, hotel scope, Faust's pages.

The first tests serve the hub's real web app (`build_hub`, views and guard as a worker has
them) from aiohttp's test server without starting the app: the guard answers before any
table is read, and a query it lets through gets the view's own answer (503: no tables run
here), never 401 or 403. The tests marked `integration` ask the running in-process hub
about hotels it holds.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from yarl import URL

from streams.core.identities import Identity, IdentityStore, IssuedSecret, Role, new_credential
from streams.core.kinds import EventKind, System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.worker.auth import CHALLENGE, Access, QueryGuard, authorization, caller_of
from streams.worker.forwarding import forward
from streams.worker.hub import build_hub
from tests.support.collector import ProcessedEvents
from tests.support.events import sample
from tests.support.hotel import new_hotel_id
from tests.support.http import (
    Answer,
    as_basic_auth,
    get,
    poll,
    query_identity,
    revoke,
    rotate,
)

HOTEL_A, HOTEL_B = "HTL-A", "HTL-B"
QUERIES = ("/rooms/{hotel}/R1", "/rooms/{hotel}", "/customers/{hotel}/C1",
           "/reservations/{hotel}/B1", "/availability/{hotel}/DBL?from=2026-11-22&to=2026-11-23")
FAUST_PAGES = ("/", "/router", "/router/", "/table", "/table/", "/table/room_to_state/",
               "/graph", "/graph/", "/stats", "/stats/", "/assignment/", "/performance/")
WATCH_S = 1.0
"""`WatchedStore`'s interval: a rotation or revocation counts after it."""


@pytest.fixture
def secured(tmp_path: Path) -> HubSettings:
    """Settings with security on, their own identity store, and the worker's identity in it."""
    settings = HubSettings(security="sasl", table_store="memory", security_dir=tmp_path / "sec",
                           worker_data_dir=tmp_path / "worker", identity="hotel-hub",
                           app_id=f"auth-{uuid.uuid4().hex[:6]}")
    with IdentityStore(settings.identities_path).editing() as store:
        hub, _ = new_credential(Identity("hotel-hub", Role.HUB), settings.secrets_dir)
        store.put(hub)
    return settings


@pytest.fixture
def who(secured: HubSettings) -> Iterator[dict[str, IssuedSecret]]:
    """Callers made before the server starts (a new identity counts within `WATCH_S`):
    a system of hotel A, one configured with `*`, the operator, the registry."""
    with query_identity(secured, HOTEL_A) as system_a, \
            query_identity(secured, "*") as everywhere, \
            query_identity(secured, "*", role=Role.OPERATOR) as operator, \
            query_identity(secured, "*", role=Role.REGISTRY) as registry:
        yield {"a": system_a, "*": everywhere, "operator": operator, "registry": registry}


def _client(settings: HubSettings) -> TestClient[Any, Any]:
    hub = build_hub(settings)
    hub.app.web.init_server()  # applies Faust's blueprints, as a starting worker does
    return TestClient(TestServer(hub.app.web.web_app))


@pytest.fixture
async def client(secured: HubSettings, who: dict[str, IssuedSecret]
                 ) -> AsyncIterator[TestClient[Any, Any]]:
    async with _client(secured) as started:
        yield started


async def _ask(client: TestClient[Any, Any], path: str,
               auth: aiohttp.BasicAuth | None = None, **headers: str) -> Answer:
    async with client.get(path, auth=auth, headers=headers) as response:
        body = await response.json() if response.content_type == "application/json" \
            else await response.text()
        return Answer(response.status, body, dict(response.headers))


def _guard_passed(answer: Answer) -> bool:
    return answer.status not in (401, 403, 404)


async def test_no_credentials_is_401_with_a_basic_challenge(client: TestClient[Any, Any]
                                                            ) -> None:
    for path in (*QUERIES, "/metrics"):
        answer = await _ask(client, path.format(hotel=HOTEL_A))
        assert answer.status == 401, (path, answer)
        assert answer.headers["WWW-Authenticate"] == CHALLENGE == 'Basic realm="hotelhub"'
        assert answer.body["error"] == "unauthorized"
        assert "credentials required" in answer.body["detail"]


async def test_wrong_secret_unknown_user_or_no_basic_is_401(
    client: TestClient[Any, Any], who: dict[str, IssuedSecret]
) -> None:
    issued = who["a"]
    path = f"/rooms/{HOTEL_A}/R1"
    for auth in (aiohttp.BasicAuth(issued.username, "not-the-secret"),
                 aiohttp.BasicAuth(issued.identity, "not-the-secret"),
                 aiohttp.BasicAuth("nobody.1", issued.secret),
                 aiohttp.BasicAuth(issued.secret, issued.username)):  # swapped
        answer = await _ask(client, path, auth)
        assert answer.status == 401, answer
        assert answer.headers["WWW-Authenticate"] == CHALLENGE
        assert "not accepted" in answer.body["detail"]
        assert issued.secret not in str(answer.body)
    for header in ("Bearer abc", "Basic !!!", "Basic", "Basic " + "bm9jb2xvbg=="):
        answer = await _ask(client, path, Authorization=header)
        assert answer.status == 401, (header, answer)
        assert "not HTTP Basic" in answer.body["detail"]
    assert _guard_passed(await _ask(client, path, as_basic_auth(issued)))


async def test_a_system_sees_only_its_hotels(client: TestClient[Any, Any],
                                             who: dict[str, IssuedSecret]) -> None:
    issued = who["a"]
    auth = as_basic_auth(issued)
    for path in QUERIES:
        own = await _ask(client, path.format(hotel=HOTEL_A), auth)
        assert _guard_passed(own), (path, own)
        other = await _ask(client, path.format(hotel=HOTEL_B), auth)
        assert other.status == 403, (path, other)
        assert other.body["error"] == "forbidden"
        assert HOTEL_B in other.body["detail"] and issued.identity in other.body["detail"]
        assert "WWW-Authenticate" not in other.headers
    # /metrics counts every hotel's events: not for a system of one hotel.
    metrics = await _ask(client, "/metrics", auth)
    assert metrics.status == 403 and "every hotel" in metrics.body["detail"]
    # Its identity's name works as the username too (any of its credentials' secrets).
    named = aiohttp.BasicAuth(issued.identity, issued.secret)
    assert _guard_passed(await _ask(client, f"/rooms/{HOTEL_A}", named))


async def test_an_identity_with_star_sees_every_hotel(client: TestClient[Any, Any],
                                                      who: dict[str, IssuedSecret]) -> None:
    for auth in (as_basic_auth(who["*"]), as_basic_auth(who["operator"])):
        for hotel in (HOTEL_A, HOTEL_B, new_hotel_id()):
            for path in QUERIES:
                assert _guard_passed(await _ask(client, path.format(hotel=hotel), auth))
        metrics = await _ask(client, "/metrics", auth)
        assert metrics.status == 200 and "# HELP hotelhub_" in metrics.body


async def test_authorization_sends_the_settings_identity(client: TestClient[Any, Any],
                                                         secured: HubSettings) -> None:
    """What the benchmarks send: the hub's own identity sees every hotel; none when open."""
    header = authorization(secured)
    assert _guard_passed(await _ask(client, f"/rooms/{HOTEL_B}", **header))
    assert authorization(secured.model_copy(update={"security": "none"})) == {}


async def test_the_registry_identity_may_not_query(client: TestClient[Any, Any],
                                                   who: dict[str, IssuedSecret]) -> None:
    answer = await _ask(client, f"/rooms/{HOTEL_A}", as_basic_auth(who["registry"]))
    assert answer.status == 403 and "may not query" in answer.body["detail"]


async def test_faust_pages_are_not_served(client: TestClient[Any, Any],
                                          who: dict[str, IssuedSecret]) -> None:
    operator = who["operator"]
    for path in FAUST_PAGES:
        bare = await _ask(client, path)
        assert bare.status in (401, 404), (path, bare)
        # Not served at all: not even to an operator.
        answer = await _ask(client, path, as_basic_auth(operator))
        assert answer.status == 404, (path, answer)


async def test_health_is_open_but_says_more_only_to_credentials(
    client: TestClient[Any, Any], who: dict[str, IssuedSecret]
) -> None:
    bare = await _ask(client, "/health")
    # Not running here, so "recovering"; a load balancer needs no more than that.
    assert bare.status == 503 and bare.body == {"status": "recovering"}
    assert "X-Hotelhub-Served-By" not in bare.headers
    issued = who["a"]
    full = await _ask(client, "/health", as_basic_auth(issued))
    assert full.status == 503 and "active_partitions" in full.body and full.body["detail"]
    wrong = await _ask(client, "/health", aiohttp.BasicAuth(issued.username, "nope"))
    assert wrong.status == 401


async def test_security_none_keeps_the_api_open(secured: HubSettings) -> None:
    async with _client(secured.model_copy(update={"security": "none"})) as client:
        for path in QUERIES:
            assert _guard_passed(await _ask(client, path.format(hotel=HOTEL_B)))
        assert (await _ask(client, "/metrics")).status == 200
        assert "active_partitions" in (await _ask(client, "/health")).body
        for path in FAUST_PAGES:
            assert (await _ask(client, path)).status == 404, path


async def _until_status(client: TestClient[Any, Any], path: str, auth: aiohttp.BasicAuth,
                        status: int) -> Answer:
    async def ask() -> Answer:
        return await _ask(client, path, auth)
    return await poll(ask, lambda answer: answer.status == status, timeout_s=WATCH_S + 4,
                      interval_s=0.1, what=f"{status} for {path}")


async def test_rotation_both_secrets_work_then_the_revoked_one_is_401(
    client: TestClient[Any, Any], secured: HubSettings, who: dict[str, IssuedSecret],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = f"/rooms/{HOTEL_A}"
    old = who["a"]
    assert _guard_passed(await _ask(client, path, as_basic_auth(old)))
    new = rotate(secured, old.identity)
    assert new.username != old.username
    # The new secret counts within the watch interval; the old one still does.
    await _until_status(client, path, as_basic_auth(new), 503)
    assert _guard_passed(await _ask(client, path, as_basic_auth(old)))
    revoke(secured, old.identity, old.username)
    refused = await _until_status(client, path, as_basic_auth(old), 401)
    assert refused.headers["WWW-Authenticate"] == CHALLENGE
    assert _guard_passed(await _ask(client, path, as_basic_auth(new)))
    assert (await _ask(client, f"/rooms/{HOTEL_B}", as_basic_auth(new))).status == 403
    assert "query refused: 401 unauthorized" in caplog.text  # the refusals were logged...
    _assert_never_logged(caplog, old, new)  # ...and no secret with them


def _assert_never_logged(caplog: pytest.LogCaptureFixture, *issued: IssuedSecret) -> None:
    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    for secret in issued:
        assert secret.secret not in text, f"the secret of {secret.username} was logged"
        assert as_basic_auth(secret).encode().split(" ", 1)[1] not in text, \
            f"the Authorization header of {secret.username} was logged"


async def test_a_forwarded_query_is_judged_by_the_owner_as_the_caller(
    secured: HubSettings, who: dict[str, IssuedSecret]
) -> None:
    """The hop carries the caller's Authorization: the owner authenticates the caller itself
    and applies the caller's hotels (here even where the first worker would not have)."""
    guard = QueryGuard.for_settings(secured)
    guard.allow("/rooms/{hotel_id}", Access.HOTEL)

    async def rooms(request: web.Request) -> web.Response:
        identity = caller_of(request).identity
        return web.json_response({"asked_by": identity.name if identity else None})

    owner_app = web.Application()
    owner_app.router.add_get("/rooms/{hotel_id}", rooms)
    guard.install(owner_app)
    hub = build_hub(secured)
    view = hub.app.web.views["/health"]  # any of the hub's views: forward answers through it
    async with TestServer(owner_app) as owner:
        async def hop(hotel: str, auth: aiohttp.BasicAuth | None) -> Any:
            headers = {"Authorization": auth.encode()} if auth else {}
            request = make_mocked_request("GET", f"/rooms/{hotel}", headers=headers)
            return await forward(hub.app, view, request, URL(str(owner.make_url("/"))))

        try:
            system_a = as_basic_auth(who["a"])
            mine = await hop(HOTEL_A, system_a)
            assert mine.status == 200
            assert json.loads(mine.body) == {"asked_by": who["a"].identity}
            theirs = await hop(HOTEL_B, system_a)
            assert theirs.status == 403 and HOTEL_B in json.loads(theirs.body)["detail"]
            nobody = await hop(HOTEL_A, None)
            assert nobody.status == 401 and nobody.headers["WWW-Authenticate"] == CHALLENGE
            everywhere = await hop(HOTEL_B, as_basic_auth(who["*"]))
            assert json.loads(everywhere.body) == {"asked_by": who["*"].identity}
        finally:
            await hub.app.http_client.close()


# -- against the running hub --------------------------------------------------------------


@pytest.mark.integration
async def test_running_hub_answers_a_system_for_its_own_hotel_only(
    hub_env: HubSettings, processed: ProcessedEvents,
    publishers: dict[System, HotelEventPublisher], caplog: pytest.LogCaptureFixture,
) -> None:
    if not hub_env.secured:
        pytest.skip("HOTELHUB_SECURITY=none: the query API is open")
    caplog.set_level(logging.DEBUG)
    own, other = new_hotel_id(), new_hotel_id()
    ids = []
    for hotel in (own, other):
        system, document = sample(EventKind.ROOM, "R1")
        document["hotel_id"] = hotel
        ids.append((await publishers[system].publish_document(document)).event.event_id)
    await processed.wait_for(ids)
    base = f"http://127.0.0.1:{hub_env.web_port}"
    with query_identity(hub_env, own) as issued:
        auth = as_basic_auth(issued)
        async with aiohttp.ClientSession() as session:
            mine = await poll(lambda: get(session, f"{base}/rooms/{own}/R1", auth=auth),
                              lambda answer: answer.status == 200, timeout_s=20,
                              what=f"room R1 of {own} for {issued.identity}")
            assert mine.body["hotel_id"] == own
            listing = await get(session, f"{base}/rooms/{own}", auth=auth)
            assert listing.status == 200 and listing.body["count"] == 1

            theirs = await get(session, f"{base}/rooms/{other}/R1", auth=auth)
            assert theirs.status == 403 and other in theirs.body["detail"]
            # The operator (hotels `*`) sees both, once the mirror holds the other's room too
            # (deciding it is not yet serving it).
            await poll(lambda: get(session, f"{base}/rooms/{other}/R1"),
                       lambda answer: answer.status == 200, timeout_s=20,
                       what=f"room R1 of {other} for the operator")

            nothing = await get(session, f"{base}/rooms/{own}/R1", auth=None)
            assert nothing.status == 401 and nothing.headers["WWW-Authenticate"] == CHALLENGE
            wrong = await get(session, f"{base}/rooms/{own}/R1",
                              auth=aiohttp.BasicAuth(issued.username, "wrong"))
            assert wrong.status == 401
            for path in FAUST_PAGES:
                page = await get(session, base + path, auth=None)
                assert page.status in (401, 404), (path, page)

            new = rotate(hub_env, issued.identity)
            await poll(lambda: get(session, f"{base}/rooms/{own}/R1",
                                   auth=as_basic_auth(new)),
                       lambda answer: answer.status == 200, timeout_s=WATCH_S + 4,
                       what="the new secret accepted")
            assert (await get(session, f"{base}/rooms/{own}/R1", auth=auth)).status == 200
            revoke(hub_env, issued.identity, issued.username)
            await poll(lambda: get(session, f"{base}/rooms/{own}/R1", auth=auth),
                       lambda answer: answer.status == 401, timeout_s=WATCH_S + 4,
                       what="the revoked secret refused")
            assert (await get(session, f"{base}/rooms/{own}/R1",
                              auth=as_basic_auth(new))).status == 200
    _assert_never_logged(caplog, issued, new)
