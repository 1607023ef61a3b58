"""Stays: reservations from every system and check-in/out from the front desk, in one place.

Both topics are keyed by `hotel_id:reservation_id` with the same partition count, so
one agent sees both and a movement that overtakes its booking waits instead of
looking impossible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.app import app
from streams.channels import stay_topic
from streams.consumer import decoded
from streams.effects import publish_outcome
from streams.models import CheckinCheckoutEvent, HotelEvent, ReservationEvent, record_key
from streams.rules import apply_movement, apply_reservation
from streams.runtime import rule_settings
from streams.state import ReservationState
from streams.tables import read, reservation_to_state, write


@app.agent(stay_topic)
async def track_stays(stays: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    rules = rule_settings()
    async for stay in decoded(stays):
        key = record_key(stay)
        current = read(reservation_to_state, key, ReservationState)
        if isinstance(stay, ReservationEvent):
            outcome = apply_reservation(current, stay, rules)
        elif isinstance(stay, CheckinCheckoutEvent):
            outcome = apply_movement(current, stay, rules)
        else:
            continue
        if outcome.state is not None:
            write(reservation_to_state, key, outcome.state)
        await publish_outcome(outcome)
        yield stay
