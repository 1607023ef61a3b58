"""Faust handles for the topics Faust agents read: raw bytes in, parsed by each agent.

Parsing in the agent rather than in a Faust serializer lets it pass over a record it
cannot read (and say so) instead of crashing or vanishing.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.settings import HubSettings
from streams.wire.topics import state_topic


@dataclass(frozen=True)
class Channels:
    hotel_state: faust.TopicT
    """The hotel processor's committed state log (`streams.runners.hotel_processor`),
    compacted, one partition per hotel; mirrored into the queryable tables."""


def create_channels(app: faust.App, settings: HubSettings) -> Channels:
    return Channels(
        # This app's own: byte keys, the states' JSON as bytes, the hub's partition count.
        hotel_state=app.topic(state_topic(settings), key_type=bytes, key_serializer="raw",
                              value_type=bytes, value_serializer="raw",
                              partitions=settings.topic_partitions, internal=True,
                              compacting=True),
    )
