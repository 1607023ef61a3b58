"""Customers: hotel-member owns them; hotel-pms may change only what the hotel allows."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from streams.app import app
from streams.channels import customer_topic
from streams.consumer import decoded
from streams.effects import publish_outcome
from streams.models import CustomerEvent, HotelEvent, record_key
from streams.rules import apply_customer
from streams.runtime import rule_settings
from streams.state import CustomerState
from streams.tables import customer_to_state, read, write


@app.agent(customer_topic)
async def track_customers(customers: StreamT[bytes]) -> AsyncIterator[HotelEvent]:
    rules = rule_settings()
    async for customer in decoded(customers):
        if not isinstance(customer, CustomerEvent):
            continue
        key = record_key(customer)
        outcome = apply_customer(read(customer_to_state, key, CustomerState), customer, rules)
        if outcome.state is not None:
            write(customer_to_state, key, outcome.state)
        await publish_outcome(outcome)
        yield customer
