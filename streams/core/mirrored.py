"""Values of the query tables: a state and the state log offset it was mirrored from.

One byte string: a format byte, the offset (8 bytes, big-endian), then the state's JSON
exactly as the state log carries it (the JSON form of a model of `streams.core.state`).
The mirror neither parses nor re-serialises a state to store it, and a reader parses it
once, straight into its model. A mirror that reads older state log records again after a
restart (it commits its offsets only now and then) never puts an older state back, and a
value of another form (an earlier hub's) is never served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any, TypeGuard, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
Table = MutableMapping[bytes, Any]

FORMAT = b"\x01"
_HEAD = len(FORMAT) + 8


def value(offset: int, state_json: bytes) -> bytes:
    return FORMAT + offset.to_bytes(8, "big") + state_json


def _mirrored(raw: Any) -> TypeGuard[bytes]:
    return isinstance(raw, bytes) and len(raw) > _HEAD and raw[:1] == FORMAT


def offset_of(raw: Any) -> int | None:
    return int.from_bytes(raw[1:_HEAD], "big") if _mirrored(raw) else None


def read(table: Table, key: bytes, model: type[M]) -> M | None:
    raw = table.get(key)
    return model.model_validate_json(raw[_HEAD:]) if _mirrored(raw) else None


def states(table: Table) -> Iterator[tuple[bytes, bytes]]:
    """(key, state JSON) of every entry this worker holds."""
    for key, raw in list(table.items()):
        if _mirrored(raw):
            yield key, raw[_HEAD:]


def state_json(raw: Any) -> Any:
    """The state of a stored value as plain JSON data, or None (tests, tools)."""
    return json.loads(raw[_HEAD:]) if _mirrored(raw) else None


def mirror(table: Table, key: bytes, state: bytes, offset: int) -> bool:
    """Take `state` (JSON) from state log `offset` unless the table holds a later one."""
    current = offset_of(table.get(key))
    if current is not None and current >= offset:
        return False
    table[key] = value(offset, state)
    return True
