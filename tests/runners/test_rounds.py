"""A round of one partition writes each changed state once, with its last value; a state
over the broker's limit dead-letters the event that made it so (no broker: the round is
decided, not sent)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from streams.core.documents import build_event
from streams.core.exceptions import RecordTooLarge
from streams.core.kinds import DEADLETTER_TOPIC, EventKind
from streams.core.models import record_key
from streams.core.rules import RuleSettings
from streams.core.step import AVAILABILITY
from streams.runners.effects import split_state_key
from streams.runners.hotel_processor import HotelProcessor
from streams.runners.ordering import SOURCE_TOPIC
from streams.settings import HubSettings
from streams.wire.partitioning import hotel_partition
from streams.wire.topics import state_topic
from tests.support.events import sample

HOTEL = "H-ROUND"


def event(kind: EventKind, entity: str, **data: Any) -> Any:
    system, document = sample(kind, entity, **data)
    return build_event(document, publisher=system, default_hotel_id=HOTEL)


class Codec:
    """Decodes a record's value, the index of its event."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    async def decode(self, kind: EventKind, payload: bytes) -> Any:
        return self.events[int(payload)]

    def encode(self, value: Any) -> bytes:
        return b"encoded"


def setup(events: list[Any], **settings: Any) -> tuple[HotelProcessor, int, list[Any]]:
    # Rounds, not origins: the records carry no signature (tests/runners/test_signing.py).
    hub = HubSettings().model_copy(update={"security": "none", **settings})
    processor = HotelProcessor(hub, Codec(events), RuleSettings())  # type: ignore[arg-type]
    partition = hotel_partition(HOTEL, hub.topic_partitions)
    processor._states[partition] = {}
    topics = {kind: topic for topic, kind in processor.sources.items()}
    records = [ConsumerRecord(
        processor.hotel_events, partition, offset, 1_000 + offset, 0, b"k", str(offset).encode(),
        None, 1, 1, [(SOURCE_TOPIC, topics[EventKind(str(one.type))].encode())])
        for offset, one in enumerate(events)]
    return processor, partition, records


def booking(entity: str, checkout: str, checkin: str = "2026-12-01") -> Any:
    return event(EventKind.RESERVATION, entity, room_type="TWN", checkin_date=checkin,
                 checkout_date=checkout)


async def test_a_key_changed_by_several_steps_is_written_once_with_its_last_state() -> None:
    events = [*(event(EventKind.ROOM, f"RM-{index}", status="vacant_clean",
                      room_number=f"10{index}") for index in range(3)),
              *(booking(f"B{index}", "2026-12-03") for index in range(3))]
    processor, partition, records = setup(events)
    decided = await processor._decide(partition, records, checked=False)
    assert len(decided.steps) == 6 and not decided.dead_letters
    written = sum(len(step.changes) for step in decided.steps)
    states = decided.state_records(partition=partition, settings=processor.settings)
    keys = [split_state_key(record.key) for record in states]
    assert len(keys) == len(set(keys)) == len(decided.overlay) < written
    assert {record.topic for record in states} == {state_topic(processor.settings)}
    assert {record.partition for record in states} == {partition}
    for record in states:
        last = decided.overlay[split_state_key(record.key)]
        assert json.loads(record.value) == json.loads(last.model_dump_json())
    availability = [record for record in states
                    if split_state_key(record.key)[0] == AVAILABILITY]
    assert len(availability) == 1  # changed by all six steps


async def test_a_state_too_large_dead_letters_the_event_that_made_it_so() -> None:
    events = [event(EventKind.ROOM, "RM-1", status="vacant_clean", room_number="101"),
              booking("B-short", "2026-12-03"), booking("B-long", "2027-10-01", "2026-12-05"),
              booking("B-after", "2026-12-02")]
    processor, partition, records = setup(events, max_record_bytes=2_000)
    fast = await processor._decide(partition, records, checked=False)
    with pytest.raises(RecordTooLarge):  # _process replays the round checked
        fast.state_records(partition=partition, settings=processor.settings)
    checked = await processor._decide(partition, records, checked=True)
    assert [record_key(step.event) for step in checked.steps[1:]] == [
        b"H-ROUND:B-short", b"H-ROUND:B-after"]  # B-long is the dead letter
    assert [out.topic for out in checked.outs].count(
        processor.settings.topic(DEADLETTER_TOPIC)) == 1
    assert len(checked.dead_letters) == 1
    assert checked.encoded.keys() == checked.overlay.keys()  # serialised once, when checked
    states = checked.state_records(partition=partition, settings=processor.settings)
    assert len(states) == len(checked.overlay)
    assert all(record.size <= 2_000 for record in states)

