"""Faust handles for the hub's topics: raw bytes in, decoded by the codec in each agent.

Decoding in the agent rather than in a Faust serializer lets a bad record
go to the dead-letter topic instead of crashing or vanishing.
"""

from __future__ import annotations

import faust

from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, EventKind
from streams.runners.effects import state_topic
from streams.settings import get_settings
from streams.worker.app import app


def _topic(*names: str, partitions: int) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, value_serializer="raw",
                     key_serializer="raw", partitions=partitions)


_settings = get_settings()
_partitions = _settings.topic_partitions


def _of(kind: EventKind) -> str:
    return _settings.topic(POLICIES[kind].topic)


analytics_topic = _topic(_of(EventKind.ANALYTICS), partitions=_partitions)
deadletter_topic = _topic(_settings.topic(DEADLETTER_TOPIC), partitions=1)


def _internal(name: str, *, compacting: bool = False) -> faust.TopicT:
    """A topic of this app's own: byte keys, JSON values, the hub's partition count."""
    return app.topic(name, key_type=bytes, key_serializer="raw", value_serializer="json",
                     partitions=_partitions, internal=True, compacting=compacting)


hotel_state_topic = _internal(state_topic(_settings), compacting=True)
"""The hotel processor's committed state log (`streams.runners.hotel_processor`), compacted, one
partition per hotel; mirrored into the queryable tables."""
