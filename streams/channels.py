"""Faust handles for the hub's topics: raw bytes in, decoded by the codec in each agent.

Decoding in the agent rather than in a Faust serializer lets a bad record
go to the dead-letter topic instead of crashing or vanishing.
"""

from __future__ import annotations

import faust

from streams.app import app
from streams.effects import delta_topic, stays_topic
from streams.kinds import DEADLETTER_TOPIC, POLICIES, REFUSAL_TOPIC, EventKind
from streams.settings import get_settings


def _topic(*names: str, partitions: int) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, value_serializer="raw",
                     key_serializer="raw", partitions=partitions)


_settings = get_settings()
_partitions = _settings.topic_partitions


def _of(kind: EventKind) -> str:
    return _settings.topic(POLICIES[kind].topic)


customer_topic = _topic(_of(EventKind.CUSTOMER), partitions=_partitions)
room_topic = _topic(_of(EventKind.ROOM), partitions=_partitions)
analytics_topic = _topic(_of(EventKind.ANALYTICS), partitions=_partitions)
refusal_topic = _topic(_settings.topic(REFUSAL_TOPIC), partitions=_partitions)
deadletter_topic = _topic(_settings.topic(DEADLETTER_TOPIC), partitions=1)

stay_topic = _topic(
    _of(EventKind.RESERVATION), _of(EventKind.CHECKIN_CHECKOUT), partitions=_partitions
)
"""One stay's bookings and movements: same key, same partition count, one agent, so a race
between the two topics is seen where both arrive."""

inventory_delta_topic = app.topic(
    delta_topic(_settings),
    key_type=bytes,
    key_serializer="raw",
    value_serializer="json",
    partitions=_partitions,
    internal=True,
)
"""Availability changes, keyed `hotel_id:room_type` for the partition that owns that type.

Named per app id (`hotelhub.inventory-deltas` by default): every app on the cluster sends
deltas for the events it processes, so a shared topic would count each event once per app."""

stays_log_topic = app.topic(
    stays_topic(_settings),
    key_type=bytes,
    key_serializer="raw",
    value_serializer="json",
    partitions=_partitions,
    internal=True,
    compacting=True,
)
"""The stay processor's committed state log (`streams.stay_processor`), compacted."""
