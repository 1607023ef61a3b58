"""The Event Storage over the gateway's HTTP API: same filters as the CLI, paged, scoped."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from streams.core.kinds import EventKind
from streams.settings import HubSettings
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.stored import store, stored_event, stored_refusal
from tests.support.workers import free_port, isolated


@pytest.fixture(scope="module")
def settings(hub_settings: HubSettings, storage_dsn: str) -> HubSettings:
    return gateway_settings(isolated(hub_settings, "gw-hist"), database_url=storage_dsn)


async def test_pages_filters_and_scopes(settings: HubSettings, storage_dsn: str) -> None:
    hotel = f"HTL-H-{uuid.uuid4().hex[:6].upper()}"
    booking = stored_event(EventKind.RESERVATION, "created", hotel, "R-7", minute=0,
                           source="hotel-saas", targets=("hotel-pms",))
    rooms = [stored_event(EventKind.ROOM, "status_changed", hotel, f"R{i}", minute=i + 1,
                          targets=("hotel-saas",)) for i in range(5)]
    member = stored_event(EventKind.CUSTOMER, "updated", hotel, "C-1", minute=9,
                          source="hotel-member", targets=("hotel-pms",))
    refusal = stored_refusal(booking, "overbooked", minute=10)
    await store(storage_dsn, [booking, *rooms, member, refusal])

    async with running_gateway(settings) as gateway:
        async with gateway.client("operator") as operator:
            seen, cursor = [], None
            while True:
                answer = await operator.get("/events", params={
                    "hotel_id": hotel, "limit": 3, **({"cursor": cursor} if cursor else {})})
                assert answer.status_code == 200, answer.text
                seen += [row["record_id"] for row in answer.json()["records"]]
                cursor = answer.json()["next"]
                if cursor is None:
                    break
            assert seen == [str(r.record_id) for r in (booking, *rooms, member, refusal)]

            rooms_only = await operator.get("/events", params={
                "hotel_id": hotel, "kind": "room", "since": "2026-11-24T06:02:00Z"})
            assert [row["entity_id"] for row in rooms_only.json()["records"]] == [
                "R1", "R2", "R3", "R4"]

            chained = await operator.get("/events/chain/R-7")
            assert [row["record_type"] for row in chained.json()["records"]
                    if row["hotel_id"] == hotel] == ["event", "refusal"]

            naive = await operator.get("/events", params={"since": "2026-11-24T06:00:00"})
            assert naive.status_code == 422 and "time zone" in naive.json()["detail"]
            forged = await operator.get("/events", params={"cursor": "Zm9yZ2Vk"})
            assert forged.status_code == 422 and "cursor" in forged.json()["detail"]

        async with gateway.client("hotel-saas") as saas:
            own = await saas.get("/events", params={"hotel_id": hotel})
            # Its booking, the rooms sent to it and the refusal of its booking; not the
            # member's update, which went to the PMS only.
            assert [row["record_id"] for row in own.json()["records"]] == [
                str(r.record_id) for r in (booking, *rooms, refusal)]
        async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
            assert (await anonymous.get("/events")).status_code == 401


async def test_without_an_event_storage_it_says_so(hub_settings: HubSettings) -> None:
    away = gateway_settings(isolated(hub_settings, "gw-hist-away"), database_url=(
        f"postgresql://hotelhub:x@127.0.0.1:{free_port()}/hotelhub"))
    async with running_gateway(away) as gateway, gateway.client("operator") as operator:
        answer = await operator.get("/events")
        assert answer.status_code == 503
        assert answer.json()["error"] == "storage_unavailable"
        assert "Event Storage" in answer.json()["detail"]


async def test_a_storage_without_its_schema_and_a_nul_are_said_not_500(
        hub_settings: HubSettings, settings: HubSettings, database_url: str) -> None:
    bare = f"bare_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(bare)))
    try:
        unmigrated = gateway_settings(isolated(hub_settings, "gw-hist-bare"), database_url=(
            urlunsplit(urlsplit(database_url)._replace(path=f"/{bare}"))))
        async with running_gateway(unmigrated) as gateway, \
                gateway.client("operator") as operator:
            for path in ("/events", "/events/chain/R-1"):
                answer = await operator.get(path)
                assert answer.status_code == 503, answer.text
                assert "no schema" in answer.json()["detail"]
        async with running_gateway(settings) as gateway, gateway.client("operator") as operator:
            answer = await operator.get("/events", params={"hotel_id": "H\x00"})
            assert answer.status_code == 422 and "NUL" in answer.json()["detail"]
            assert (await operator.get("/events/chain/R%00")).status_code == 422
    finally:
        async with await psycopg.AsyncConnection.connect(database_url,
                                                         autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(bare)))
