"""Who may publish and who receives what, through the gateway on the real broker: every
system x every kind x publish (REST) / subscribe (WebSocket and webhook)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from streams.core.kinds import POLICIES, REFUSAL_TOPIC, EventKind, System
from streams.core.models import Refusal, RefusalReason
from streams.settings import HubSettings
from streams.wire.cloudevents import refusal_headers
from streams.wire.codec import ConfluentAvroCodec
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.events import sample
from tests.support.gateway import gateway_settings, receiver, running_gateway
from tests.support.workers import isolated

pytestmark = pytest.mark.integration

SYSTEMS = (System.HOTEL_PMS, System.HOTEL_MEMBER, System.HOTEL_SAAS)
PUBLISHERS = (*SYSTEMS, System.HOTEL_HUB)


async def test_every_system_publishes_only_its_kinds_and_receives_only_its_targets(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-matrix"))
    async with running_gateway(settings) as gateway, receiver() as hooks_pms, \
            receiver() as hooks_member, receiver() as hooks_saas:
        hooks = {System.HOTEL_PMS: hooks_pms, System.HOTEL_MEMBER: hooks_member,
                 System.HOTEL_SAAS: hooks_saas}
        for system, hook in hooks.items():
            async with gateway.client(system.value) as client:
                answer = await client.post("/webhooks", json={"url": hook.url})
                assert answer.status_code == 201, answer.text
                hook.secret = answer.json()["secret"]
        async with gateway.subscribe("hotel-pms") as ws_pms, \
                gateway.subscribe("hotel-member") as ws_member, \
                gateway.subscribe("hotel-saas") as ws_saas:
            sockets = {System.HOTEL_PMS: ws_pms, System.HOTEL_MEMBER: ws_member,
                       System.HOTEL_SAAS: ws_saas}
            accepted: dict[str, EventKind] = {}
            for system in PUBLISHERS:
                async with gateway.client(system.value) as client:
                    for kind in EventKind:
                        _, document = sample(kind, f"{system.value}-{kind.value}")
                        answer = await client.post("/events", json=document)
                        may = system in POLICIES[kind].publishers
                        assert answer.status_code == (202 if may else 403), (
                            system, kind, answer.text)
                        if may:
                            accepted[answer.json()["event_id"]] = kind
                        else:
                            assert kind.value in answer.json()["detail"]
            # Every kind has at least one publisher among the systems and the hub.
            assert set(accepted.values()) == set(EventKind)
            for system in SYSTEMS:
                wanted = {event_id for event_id, kind in accepted.items()
                          if system in POLICIES[kind].targets}
                socket = sockets[system]
                await socket.receive(len(wanted))
                await socket.quiet(1.0)
                ids = [event["id"] for event in socket.events]
                assert sorted(ids) == sorted(wanted), system
                await hooks[system].wait_for(len(wanted))
                assert sorted(hooks[system].ids()) == sorted(wanted), system
                assert hooks[system].bad == []
            for event in ws_member.events:
                kind = accepted[event["id"]]
                assert event["type"].startswith(f"hotel.{kind.value}.")
                assert event["data"]["event_id"] == event["id"]
                assert event["hubcursor"].startswith("c1.")


async def test_a_refusal_reaches_only_the_system_whose_event_was_refused(
        hub_settings: HubSettings) -> None:
    settings = gateway_settings(isolated(hub_settings, "gw-refusal"))
    async with running_gateway(settings) as gateway, \
            gateway.subscribe("hotel-saas", ["refusal.*"]) as saas, \
            gateway.subscribe("hotel-pms", ["*"]) as pms:
        refusal = Refusal(
            refusal_id=uuid.uuid4(), refused_event_id=uuid.uuid4(),
            event_type="hotel.reservation.created", hotel_id="HTL-TYO-01", entity_id="R-9",
            origin_system="hotel-saas", updated_by_system="hotel-saas",
            reason_code=RefusalReason.OVERBOOKED, reason="no DBL left on 2026-11-24",
            refused_at=datetime.now(UTC))
        async with SchemaRegistryClient.from_settings(settings) as registry:
            codec = ConfluentAvroCodec(registry)
            await codec.register()
            producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                        **settings.kafka_auth())
            await producer.start()
            try:
                await producer.send_and_wait(
                    settings.topic(REFUSAL_TOPIC), codec.encode(refusal),
                    key=b"HTL-TYO-01:R-9", headers=refusal_headers(refusal))
            finally:
                await producer.stop()
        [event] = await saas.receive(1)
        assert event["type"] == "hotel.refusal.overbooked"
        assert event["data"]["refused_event_id"] == str(refusal.refused_event_id)
        assert event["subject"] == "R-9"
        assert await pms.quiet(1.0) == []
