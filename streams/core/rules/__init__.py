"""The design's rules, made precise, as pure functions of (current state, event).

Agents read a table, call one of these and write what comes back, so every rule
is tested without Kafka and a replay of the same events always decides the same.
Nothing here reads a clock: derived events and refusals take their ids and times
from the event that caused them.

One module per family of rules:

* `config`: `RuleSettings` (timezone, what hotel-pms may change, overbooking);
* `outcome`: what every rule returns, refusals, resends and stale versions;
* `stays`: reservations and check-in/out/no-show movements, nights sold;
* `rooms`: room changes and the hub's derived room status, nights out of order;
* `customers`: hotel-member's customers and what hotel-pms may change of them;
* `origin`: an event must come from the system it names, as the hub verified it.
"""

from __future__ import annotations

from streams.core.rules.config import RuleSettings, parse_allowance
from streams.core.rules.customers import CUSTOMER_FIELDS, OWNER_ONLY_FIELDS, apply_customer
from streams.core.rules.origin import Principal, origin_refusal
from streams.core.rules.outcome import Outcome, derived_id, published_at, refuse
from streams.core.rules.rooms import apply_room, is_derived
from streams.core.rules.stays import (
    FINISHED,
    GUEST_MOVES,
    HISTORY_FIELDS,
    LIFECYCLE,
    apply_movement,
    apply_reservation,
    held_nights,
    sold_deltas,
)

__all__ = [
    "CUSTOMER_FIELDS",
    "FINISHED",
    "GUEST_MOVES",
    "HISTORY_FIELDS",
    "LIFECYCLE",
    "OWNER_ONLY_FIELDS",
    "Outcome",
    "Principal",
    "RuleSettings",
    "apply_customer",
    "apply_movement",
    "apply_reservation",
    "apply_room",
    "derived_id",
    "held_nights",
    "is_derived",
    "origin_refusal",
    "parse_allowance",
    "published_at",
    "refuse",
    "sold_deltas",
]
