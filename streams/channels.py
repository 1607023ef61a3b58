"""Faust handles for the hub's topics: raw bytes in, decoded by the codec in each agent.

Decoding in the agent rather than in a Faust serializer lets a bad record
go to the dead-letter topic instead of crashing or vanishing.
"""

from __future__ import annotations

import faust

from streams.app import app
from streams.kinds import DEADLETTER_TOPIC, POLICIES, REFUSAL_TOPIC, EventKind
from streams.settings import get_settings


def _topic(*names: str, partitions: int) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, value_serializer="raw",
                     key_serializer="raw", partitions=partitions)


_partitions = get_settings().topic_partitions

reservation_topic = _topic(POLICIES[EventKind.RESERVATION].topic, partitions=_partitions)
customer_topic = _topic(POLICIES[EventKind.CUSTOMER].topic, partitions=_partitions)
room_topic = _topic(POLICIES[EventKind.ROOM].topic, partitions=_partitions)
checkin_checkout_topic = _topic(POLICIES[EventKind.CHECKIN_CHECKOUT].topic, partitions=_partitions)
analytics_topic = _topic(POLICIES[EventKind.ANALYTICS].topic, partitions=_partitions)
refusal_topic = _topic(REFUSAL_TOPIC, partitions=_partitions)
deadletter_topic = _topic(DEADLETTER_TOPIC, partitions=1)

stay_topic = _topic(
    POLICIES[EventKind.RESERVATION].topic,
    POLICIES[EventKind.CHECKIN_CHECKOUT].topic,
    partitions=_partitions,
)
"""One stay's bookings and movements: same key, same partition count, one agent, so a race
between the two topics is seen where both arrive."""

inventory_delta_topic = app.topic(
    "hotelhub.inventory-deltas",
    key_type=bytes,
    key_serializer="raw",
    value_serializer="json",
    partitions=_partitions,
    internal=True,
)
"""Availability changes, keyed `hotel_id:room_type` for the partition that owns that type."""
