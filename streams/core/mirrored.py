"""Values of the query tables: a state and the state log offset it was mirrored from.

`{"offset": n, "state": {...}}`, where the state is the JSON form of a model of
`streams.core.state`: a mirror that reads older state log records again after a restart
(it commits its offsets only now and then) never puts an older state back.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, TypeGuard, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
Table = MutableMapping[bytes, Any]


def _mirrored(raw: Any) -> TypeGuard[dict[str, Any]]:
    """Written by this mirror, not left by an earlier version of the hub (never served)."""
    return isinstance(raw, dict) and "offset" in raw and "state" in raw


def read(table: Table, key: bytes, model: type[M]) -> M | None:
    raw = table.get(key)
    return model.model_validate(raw["state"]) if _mirrored(raw) else None


def states(table: Table) -> Iterator[tuple[bytes, Any]]:
    """(key, state JSON) of every entry this worker holds."""
    for key, raw in list(table.items()):
        if _mirrored(raw):
            yield key, raw["state"]


def mirror(table: Table, key: bytes, state: Any, offset: int) -> bool:
    """Take `state` from state log `offset` unless the table holds a later one."""
    current = table.get(key)
    if _mirrored(current) and int(current["offset"]) >= offset:
        return False
    table[key] = {"offset": offset, "state": state}
    return True
