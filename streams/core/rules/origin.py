"""Who sent an event: the system it names must be the producer the hub verified.

`updated_by_system` is written by the client, so on its own it proves nothing; the hub
knows the producer from the record's signature (`streams.wire.signing`), checked when the
record entered it. An event whose producer is unknown (unsigned, bad signature, revoked
credential) or is another system is refused, never applied: the hub would otherwise take
one system's word for another's (hotel-pms naming itself hotel-hub to skip room versions).
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.models import HotelEvent, Refusal, RefusalReason
from streams.core.rules.outcome import refuse


@dataclass(frozen=True)
class Principal:
    """The producer of a record as the hub verified it; `name` None when it could not."""

    name: str | None
    problem: str | None = None
    """Why the producer is not known (e.g. "unsigned"), when `name` is None."""


def origin_refusal(event: HotelEvent, principal: Principal) -> Refusal | None:
    """A refusal when `event` does not come from the system it names; None when it does."""
    claimed = event.updated_by_system
    if principal.name == claimed:
        return None
    if principal.name is None:
        why = principal.problem or "not verified"
        reason = f"updated_by_system {claimed} but the producer is not verified: {why}"
    else:
        reason = f"updated_by_system {claimed} but signed by {principal.name}"
    return refuse(event, RefusalReason.UNVERIFIED_ORIGIN, reason)
