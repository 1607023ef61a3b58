"""Topic creation reports what the broker refused, per topic (CreateTopics does not raise)."""

from __future__ import annotations

import uuid

import pytest

from streams.core.exceptions import ConfigurationError
from streams.runners.admin import ensure_topics
from streams.settings import HubSettings
from streams.wire.topics import TopicSpec

pytestmark = pytest.mark.integration


async def test_a_topic_the_identity_may_not_create_is_named(hub_settings: HubSettings) -> None:
    if not hub_settings.secured:
        pytest.skip("the broker enforces ACLs only with security on")
    name = hub_settings.topic(f"not-for-pms-{uuid.uuid4().hex[:6]}")
    as_pms = hub_settings.as_identity("hotel-pms")

    with pytest.raises(ConfigurationError) as refused:
        await ensure_topics(as_pms, [TopicSpec(name, 1)])

    assert name in str(refused.value)
    assert "TOPIC_AUTHORIZATION_FAILED" in str(refused.value) or "uthoriz" in str(refused.value)


async def test_the_operator_creates_it(hub_settings: HubSettings) -> None:
    name = hub_settings.topic(f"by-operator-{uuid.uuid4().hex[:6]}")
    await ensure_topics(hub_settings.as_identity("operator"), [TopicSpec(name, 1)])
    await ensure_topics(hub_settings.as_identity("operator"), [TopicSpec(name, 1)])  # idempotent
