"""Faust handles for the hub's topics: raw bytes in, decoded by the codec in each agent.

Decoding in the agent rather than in a Faust serializer lets a bad record
go to the dead-letter topic instead of crashing or vanishing.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.core.kinds import DEADLETTER_TOPIC, POLICIES, EventKind
from streams.settings import HubSettings
from streams.wire.topics import state_topic


@dataclass(frozen=True)
class Channels:
    analytics: faust.TopicT
    deadletter: faust.TopicT
    hotel_state: faust.TopicT
    """The hotel processor's committed state log (`streams.runners.hotel_processor`),
    compacted, one partition per hotel; mirrored into the queryable tables."""


def create_channels(app: faust.App, settings: HubSettings) -> Channels:
    partitions = settings.topic_partitions

    def raw(name: str, *, partitions: int) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, value_serializer="raw",
                         key_serializer="raw", partitions=partitions)

    return Channels(
        analytics=raw(settings.topic(POLICIES[EventKind.ANALYTICS].topic), partitions=partitions),
        deadletter=raw(settings.topic(DEADLETTER_TOPIC), partitions=1),
        # This app's own: byte keys, the states' JSON as bytes, the hub's partition count.
        hotel_state=app.topic(state_topic(settings), key_type=bytes, key_serializer="raw",
                              value_type=bytes, value_serializer="raw", partitions=partitions,
                              internal=True, compacting=True),
    )
