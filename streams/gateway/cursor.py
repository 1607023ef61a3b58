"""The resume cursor a WebSocket client gets with every event: where it is in every partition.

An event stream spread over partitions has no single offset, so the cursor holds the next
offset of each partition the connection reads (`c1.` + base64url JSON). It is opaque to
clients and stays valid as long as Kafka keeps the records it points at (the topics'
retention, 7 days by default).
"""

from __future__ import annotations

import base64
import binascii
import json

from aiokafka import TopicPartition

PREFIX = "c1."
Positions = dict[TopicPartition, int]


class CursorError(ValueError):
    """A cursor this gateway cannot read; the message says what is wrong with it."""


class CursorExpired(CursorError):
    """A cursor pointing at records Kafka no longer keeps."""


def encode_cursor(positions: Positions) -> str:
    by_topic: dict[str, dict[str, int]] = {}
    for tp, offset in positions.items():
        by_topic.setdefault(tp.topic, {})[str(tp.partition)] = offset
    raw = json.dumps(by_topic, separators=(",", ":"), sort_keys=True).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Positions:
    if not cursor.startswith(PREFIX):
        raise CursorError("cursor does not start with 'c1.': not a cursor this gateway gave")
    body = cursor[len(PREFIX):]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("cursor is damaged (not base64url JSON); use the last one received "
                          "unchanged") from None
    positions: Positions = {}
    if not isinstance(data, dict):
        raise CursorError("cursor is damaged (not a map of topics)")
    for topic, partitions in data.items():
        if not isinstance(partitions, dict):
            raise CursorError(f"cursor is damaged (topic {topic!r} holds no partitions)")
        for partition, offset in partitions.items():
            if not (partition.isascii() and partition.isdigit()
                    and type(offset) is int and offset >= 0):
                raise CursorError(f"cursor is damaged ({topic}[{partition}] = {offset!r})")
            positions[TopicPartition(topic, int(partition))] = offset
    return positions
