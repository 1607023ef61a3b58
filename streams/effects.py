"""Publishes what a rule decided: refusals, derived room events, availability deltas.

Sent from inside the agent, so with exactly_once they commit in the same Kafka
transaction as the table change and the consumed offset.
"""

from __future__ import annotations

from typing import Any

from streams.channels import inventory_delta_topic, refusal_topic, room_topic
from streams.cloudevents import headers_for, refusal_headers
from streams.metrics import refusals_total
from streams.models import record_key
from streams.rules import Outcome
from streams.runtime import shared_codec
from streams.state import table_key


async def publish_outcome(outcome: Outcome[Any]) -> None:
    if not (outcome.refusals or outcome.room_events or outcome.deltas):
        return
    codec = shared_codec()
    await codec.ensure_registered()
    for refusal in outcome.refusals:
        await refusal_topic.send(
            key=table_key(refusal.hotel_id, refusal.entity_id).encode(),
            value=codec.encode(refusal),
            headers=refusal_headers(refusal),
        )
        refusals_total.labels(reason=refusal.reason_code.value).inc()
    for room_event in outcome.room_events:
        await room_topic.send(
            key=record_key(room_event), value=codec.encode(room_event),
            headers=headers_for(room_event),
        )
    for delta in outcome.deltas:
        await inventory_delta_topic.send(
            key=table_key(delta.hotel_id, delta.room_type).encode(), value=delta.to_json()
        )
