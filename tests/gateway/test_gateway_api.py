"""The gateway's REST API on the real broker: who is let in, what a bad request is told,
publishing once per Idempotency-Key, and the webhook endpoint registry shared through Kafka."""

from __future__ import annotations

import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.kinds import POLICIES, EventKind
from streams.gateway.book import EndpointBook
from streams.settings import HubSettings
from tests.support.events import sample
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.workers import isolated

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(hub_settings: HubSettings) -> HubSettings:
    return gateway_settings(isolated(hub_settings, "gw-api"))


async def _records(settings: HubSettings, kind: EventKind) -> int:
    topic = settings.topic(POLICIES[kind].topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                **settings.kafka_auth())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_callers_without_good_credentials_are_refused(settings: HubSettings) -> None:
    async with running_gateway(settings) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
            answer = await anonymous.post("/events", json={})
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"].startswith("Basic")
            assert (await anonymous.get("/webhooks")).status_code == 401
            assert (await anonymous.get("/healthz")).status_code == 200
            assert (await anonymous.get("/readyz")).json() == {"status": "ready"}
            wrong = await anonymous.get("/webhooks", auth=("hotel-pms.1", "not-the-secret"))
            assert wrong.status_code == 401
            assert "not-the-secret" not in wrong.text
        async with gateway.client("operator") as operator:
            _, document = sample(EventKind.ROOM, "R-OP")
            answer = await operator.post("/events", json=document)
            assert answer.status_code == 403
            assert "operator" in answer.json()["detail"]
            metrics = await operator.get("/metrics")
            assert metrics.status_code == 200
            assert "hotelhub_gateway_deliveries_total" in metrics.text


async def test_a_bad_event_is_told_which_fields_are_wrong(settings: HubSettings) -> None:
    async with running_gateway(settings) as gateway, gateway.client("hotel-pms") as pms:
        _, document = sample(EventKind.ROOM, "R-BAD")
        document["data"]["status"] = "melted"
        document["data"]["base_price"] = -5
        answer = await pms.post("/events", json=document)
        assert answer.status_code == 422
        body = answer.json()
        assert body["error"] == "invalid_event"
        assert set(body["fields"]) >= {"data.status"}
        not_json = await pms.post("/events", content=b"{", headers={
            "content-type": "application/json"})
        assert not_json.status_code == 422
        stated = dict(document, data={**sample(EventKind.ROOM, "R-X")[1]["data"]},
                      updated_by_system="hotel-member")
        answer = await pms.post("/events", json=stated)
        assert answer.status_code == 422
        assert "updated_by_system" in answer.json()["fields"]


async def test_an_idempotency_key_or_an_event_id_publishes_once(settings: HubSettings) -> None:
    async with running_gateway(settings) as gateway, gateway.client("hotel-pms") as pms:
        before = await _records(settings, EventKind.ROOM)
        _, document = sample(EventKind.ROOM, f"R-{uuid.uuid4().hex[:6]}")
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await pms.post("/events", json=document, headers=key)
        again = await pms.post("/events", json=document, headers=key)
        assert first.status_code == again.status_code == 202
        assert first.json()["event_id"] == again.json()["event_id"]
        assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
        other = dict(document, data={**document["data"], "version": 99})
        reused = await pms.post("/events", json=other, headers=key)
        assert reused.status_code == 422
        assert reused.json()["error"] == "idempotency_key_reused"
        stated = dict(document, event_id=str(uuid.uuid4()))
        assert (await pms.post("/events", json=stated)).json()["replayed"] is False
        assert (await pms.post("/events", json=stated)).json()["replayed"] is True
        # A second gateway process reads the same answered requests from Kafka.
        async with running_gateway(settings) as second, second.client("hotel-pms") as pms2:
            assert (await pms2.post("/events", json=document, headers=key)).json()[
                "replayed"] is True
        assert await _records(settings, EventKind.ROOM) == before + 2


async def test_endpoints_are_kept_in_kafka_and_scoped_to_their_system(
        settings: HubSettings) -> None:
    async with running_gateway(settings) as gateway, gateway.client(
            "hotel-member") as member, gateway.client("hotel-saas") as saas:
        created = await member.post("/webhooks", json={
            "url": "https://receiver.example/hooks", "patterns": ["reservation.*"],
            "description": "loyalty"})
        assert created.status_code == 201, created.text
        endpoint = created.json()
        assert endpoint["secret"].startswith("whsec_")
        assert endpoint["system"] == "hotel-member"
        path = f"/webhooks/{endpoint['id']}"
        assert "secret" not in (await member.get(path)).json()
        assert (await saas.get(path)).status_code == 404
        assert endpoint["id"] not in [e["id"] for e in (await saas.get("/webhooks")).json()]
        forged = await saas.post("/webhooks", json={"url": "https://x.example/h",
                                                    "system": "hotel-member"})
        assert forged.status_code == 403
        for bad, field in ((dict(url="ftp://x.example/h"), "url"),
                           (dict(url="http://169.254.169.254/latest"), "url"),
                           (dict(url="http://[fe80::1]/h"), "url"),
                           (dict(url="https://x.example/h", patterns=["nope.*"]), "patterns"),
                           (dict(url="https://x.example/h", patterns=[]), "patterns")):
            answer = await member.post("/webhooks", json=bad)
            assert answer.status_code == 422, (bad, answer.text)
            assert field in answer.json()["fields"], answer.text
        paused = await member.post(f"{path}/pause")
        assert paused.json()["status"] == "paused"
        patched = await member.patch(path, json={"patterns": ["customer.updated"],
                                                 "status": "active"})
        assert patched.json()["patterns"] == ["customer.updated"]
        assert patched.json()["status"] == "active"
        # Another process, started now, reads the registration from the topic.
        book = EndpointBook(settings)
        await book.start()
        try:
            found = book.get(endpoint["id"])
            assert found is not None and found.patterns == ["customer.updated"]
            assert found.secret == endpoint["secret"]
        finally:
            await book.stop()
        assert (await member.delete(path)).status_code == 204
        assert (await member.get(path)).status_code == 404


async def test_the_openapi_document_describes_the_api(settings: HubSettings) -> None:
    async with running_gateway(settings) as gateway, httpx.AsyncClient(
            base_url=gateway.url) as client:
        document = (await client.get("/openapi.json")).json()
        assert {"/events", "/webhooks", "/webhooks/{endpoint_id}/replay", "/healthz",
                "/readyz", "/metrics"} <= set(document["paths"])
        assert "HTTPBasic" in document["components"]["securitySchemes"]


