"""A private node stopped and started under a publisher: publishing fails within a bound while
it is down and works again once it is up, nothing acknowledged is lost, and the session's
shared broker is never touched."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.core.exceptions import BrokerUnavailable, PublishError
from streams.core.kinds import POLICIES, EventKind, System
from streams.ops.broker import EmbeddedKafka
from streams.registry import service as registry
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.registry_client import SchemaRegistryClient
from tests.support.eos import read_topic
from tests.support.events import sample
from tests.support.private_hub import PrivateHub, private_hub

pytestmark = pytest.mark.integration

FAIL_WITHIN_S = 30.0
"""Bound on a publish against the stopped node, with the lowered timeouts below."""


def shared_pid(settings: HubSettings) -> str | None:
    path = EmbeddedKafka(settings).daemon.pid_path
    return path.read_text() if path.exists() else None


@pytest.fixture
def hub(hub_settings: HubSettings, tmp_path: Path) -> Iterator[PrivateHub]:
    began = time.monotonic()
    with private_hub(hub_settings, tmp_path) as started:
        print(f"\nprivate hub ready in {time.monotonic() - began:.1f} s: "
              + ", ".join(f"{step} {took:.1f} s" for step, took in started.timings.items()))
        yield started


def room(tag: str, index: int) -> dict[str, object]:
    return sample(EventKind.ROOM, f"RM-{tag}-{index}")[1]


async def read_all(settings: HubSettings, topic: str) -> dict[str, bytes]:
    """Every committed record of `topic`, by its CloudEvents id."""
    return {dict(record.headers)["ce_id"].decode(): record.value or b""
            for record in await read_topic(settings.as_identity("operator"), topic)}


async def test_publishing_fails_while_the_private_broker_is_stopped_and_resumes_after(
    hub_settings: HubSettings, hub: PrivateHub,
) -> None:
    shared_before = shared_pid(hub_settings)
    settings = hub.settings.model_copy(update={
        "connect_timeout_s": 2.0, "publish_timeout_s": 2.0, "publish_attempts": 1})
    assert settings.bootstrap_servers == f"127.0.0.1:{settings.broker_port}"
    assert settings.broker_port != hub_settings.broker_port
    assert settings.topic_prefix == hub_settings.topic_prefix
    assert settings.security == hub_settings.security
    assert hub.broker_answers()
    tag = uuid.uuid4().hex[:8]
    topic = settings.topic(POLICIES[EventKind.ROOM].topic)
    sent: list[str] = []

    pms = settings.as_identity(System.HOTEL_PMS.value)
    async with SchemaRegistryClient.from_settings(pms) as client, HotelEventPublisher(
            system=System.HOTEL_PMS, registry=client, settings=settings) as publisher:
        for index in range(3):
            sent.append(str((await publisher.publish_document(room(tag, index)))
                            .event.event_id))

        began = time.monotonic()
        await asyncio.to_thread(hub.stop_broker)
        print(f"private broker down in {time.monotonic() - began:.1f} s")
        assert not hub.broker_answers()
        assert registry.status(settings).healthy

        began = time.monotonic()
        with pytest.raises((BrokerUnavailable, PublishError)):
            await asyncio.wait_for(publisher.publish_document(room(tag, 3)),
                                   timeout=FAIL_WITHIN_S)
        print(f"publish to the stopped broker failed after {time.monotonic() - began:.1f} s")
        began = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            async with HotelEventPublisher(system=System.HOTEL_PMS, registry=client,
                                           settings=settings):
                pass
        print(f"a new publisher gave up after {time.monotonic() - began:.1f} s")

        took = await asyncio.to_thread(hub.start_broker)
        print(f"private broker answered {took:.1f} s after the start")
        assert hub.broker_answers()

        # The same publisher: its producer reconnects to the restarted node.
        for index in range(4, 7):
            sent.append(str((await publisher.publish_document(room(tag, index)))
                            .event.event_id))

    found = await read_all(settings, topic)
    assert set(sent) <= set(found)
    assert shared_pid(hub_settings) == shared_before


def test_the_private_hub_grants_what_the_session_grants(hub_settings: HubSettings) -> None:
    from tests import conftest
    from tests.support import private_hub as private

    own = private.private_settings(hub_settings, Path("/nonexistent"))
    assert ([d.model_dump() for d in private.session_deployments(own)]
            == [d.model_dump() for d in conftest.session_deployments(own)])
