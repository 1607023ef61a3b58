"""A record forged with another system's name is refused by the hub (issue 8).

Kafka's ACLs let hotel-pms write the room topic, where the hub writes too, and three
systems write reservations, so the broker cannot tell the hub who wrote a record. Each
record here is produced by a plain aiokafka client with a system's own Kafka credential,
as a third-party producer would: signed with that system's credential
(`streams.wire.signing`) or not at all. The hub takes the system from the signature: an
event naming another system, or unsigned, is refused as `unverified_origin` with a reason
naming both, and changes nothing; a correctly signed one is applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.core.kinds import POLICIES, EventKind, System
from streams.core.models import HotelEvent, RefusalReason, entity_id, record_key
from streams.core.rules import derived_id
from streams.core.state import table_key
from streams.runners.effects import DERIVED_BY
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from streams.wire.cloudevents import header_map, headers_for
from streams.wire.signing import (
    CREDENTIAL_HEADER,
    PRINCIPAL_HEADER,
    SIGNATURE_HEADER,
    Signer,
    Verifier,
)
from tests.support.collector import ProcessedEvents, Refusals
from tests.support.eos import read_topic
from tests.support.events import sample
from tests.support.tables import HubTables

pytestmark = pytest.mark.integration

Publishers = dict[System, HotelEventPublisher]


def new_hotel() -> str:
    return f"HTL-SIG-{uuid.uuid4().hex[:6].upper()}"


def secured_only(settings: HubSettings) -> None:
    if not settings.secured:
        pytest.skip("HOTELHUB_SECURITY=none: the hub verifies no signature")


def signer_of(settings: HubSettings, system: System) -> Signer:
    signer = Signer.of(settings.as_identity(system.value))
    assert signer is not None
    return signer


async def write_as(settings: HubSettings, system: System, topic: str, value: bytes,
                   key: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
    """One record written by `system` with its own Kafka credential, as any client would."""
    own = settings.as_identity(system.value)
    producer = AIOKafkaProducer(bootstrap_servers=own.bootstrap_servers, **own.kafka_auth(),
                                acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=list(headers))
    finally:
        await producer.stop()


async def produce(settings: HubSettings, producer_system: System, event: HotelEvent,
                  encoded: bytes, *, signed: bool = True,
                  extra: Sequence[tuple[str, bytes]] = ()) -> None:
    """`event` written by `producer_system`, signed with its credential unless `signed` is
    False."""
    base = POLICIES[EventKind(event.type)].topic
    key = record_key(event)
    headers = [*headers_for(event), *extra]
    if signed and settings.secured:
        # signed without the prefix
        headers = signer_of(settings, producer_system).sign(base, key, encoded, headers)
    await write_as(settings, producer_system, settings.topic(base), encoded, key, headers)


def room(publishers: Publishers, hotel: str, room_id: str, **claims: Any) -> HotelEvent:
    """A room status from hotel-pms, or claiming whatever `claims` set."""
    _, document = sample(EventKind.ROOM, room_id, room_type="DBL", status="vacant_clean",
                         maintenance_notes=None, version=1)
    event = publishers[System.HOTEL_PMS].build(
        {**document, "action": "status_changed", "hotel_id": hotel})
    return event.model_copy(update=claims) if claims else event


async def refused(refusals: Refusals, event: HotelEvent, unchanged: Any = None) -> str:
    """The reason `event` was refused as `unverified_origin`; `unchanged` (a table), when
    given, holds no state of its entity."""
    refusal = await refusals.wait_for(event.event_id)
    assert refusal.reason_code is RefusalReason.UNVERIFIED_ORIGIN, refusal
    assert refusal.updated_by_system == event.updated_by_system
    if unchanged is not None:
        assert unchanged.get(table_key(event.hotel_id, entity_id(event)).encode()) is None
    return refusal.reason


async def test_hotel_pms_cannot_speak_as_the_hub(
    hub_env: HubSettings, publishers: Publishers, refusals: Refusals, tables: HubTables,
) -> None:
    """hotel-pms may write the room topic, but a room event it signs claiming to be the
    hub's own (which skips room versions) is refused, even marked as a derived one."""
    secured_only(hub_env)
    hotel = new_hotel()
    forged = room(publishers, hotel, "R-1", updated_by_system=System.HOTEL_HUB.value)
    await produce(hub_env, System.HOTEL_PMS, forged,
                  publishers[System.HOTEL_PMS].encode(forged),
                  extra=[(DERIVED_BY, b"any-hub-app")])
    assert await refused(refusals, forged, tables.rooms) == (
        "updated_by_system hotel-hub but signed by hotel-pms")


async def test_hotel_saas_cannot_book_as_hotel_member(
    hub_env: HubSettings, publishers: Publishers, refusals: Refusals, tables: HubTables,
) -> None:
    secured_only(hub_env)
    hotel = new_hotel()
    _, document = sample(EventKind.RESERVATION, "RSV-1", room_number=None)
    booking = publishers[System.HOTEL_MEMBER].build(
        {**document, "action": "created", "hotel_id": hotel})
    assert booking.updated_by_system == System.HOTEL_MEMBER.value
    await produce(hub_env, System.HOTEL_SAAS, booking,
                  publishers[System.HOTEL_MEMBER].encode(booking))
    assert await refused(refusals, booking, tables.stays) == (
        "updated_by_system hotel-member but signed by hotel-saas")


async def test_an_unsigned_record_is_refused_whatever_headers_it_brings(
    hub_env: HubSettings, publishers: Publishers, refusals: Refusals, tables: HubTables,
) -> None:
    """A client's own `hub.principal` is dropped at the intake: only the hub sets it."""
    secured_only(hub_env)
    hotel = new_hotel()
    event = room(publishers, hotel, "R-2")
    await produce(hub_env, System.HOTEL_PMS, event, publishers[System.HOTEL_PMS].encode(event),
                  signed=False, extra=[(PRINCIPAL_HEADER, b"hotel-pms")])
    reason = await refused(refusals, event, tables.rooms)
    assert reason.startswith("updated_by_system hotel-pms but the producer is not verified: "
                             "unsigned"), reason


async def test_a_record_changed_after_signing_is_refused(
    hub_env: HubSettings, publishers: Publishers, refusals: Refusals,
) -> None:
    """Signed for one room, sent as another: the signature covers the value."""
    secured_only(hub_env)
    hotel = new_hotel()
    signed_for = room(publishers, hotel, "R-3")
    sent = room(publishers, hotel, "R-3")
    base = POLICIES[EventKind.ROOM].topic
    encode = publishers[System.HOTEL_PMS].encode
    headers = signer_of(hub_env, System.HOTEL_PMS).sign(
        base, record_key(sent), encode(signed_for), headers_for(sent))
    await write_as(hub_env, System.HOTEL_PMS, hub_env.topic(base), encode(sent),
                   record_key(sent), headers)
    reason = await refused(refusals, sent)
    assert "bad signature" in reason, reason


async def test_a_correctly_signed_record_from_any_client_is_applied(
    hub_env: HubSettings, publishers: Publishers, processed: ProcessedEvents,
    refusals: Refusals, tables: HubTables,
) -> None:
    hotel = new_hotel()
    event = room(publishers, hotel, "R-4")
    await produce(hub_env, System.HOTEL_PMS, event, publishers[System.HOTEL_PMS].encode(event))
    await processed.wait_for([event.event_id])
    state = tables.rooms.get(table_key(hotel, "R-4").encode())
    assert state is not None and state["status"] == "vacant_clean"
    assert str(event.event_id) not in refusals.by_event


async def test_the_hubs_own_room_events_are_signed_by_the_hub_and_not_taken_back(
    hub_env: HubSettings, publishers: Publishers, processed: ProcessedEvents,
    refusals: Refusals,
) -> None:
    """A check-in's derived room event is on the room topic signed as hotel-hub; the hub
    passes over its own when it reads it back (never refuses it), and the same bytes
    signed by hotel-pms are refused like any forgery."""
    secured_only(hub_env)
    hotel = new_hotel()
    pms, saas = publishers[System.HOTEL_PMS], publishers[System.HOTEL_SAAS]
    house = room(publishers, hotel, "RM-201")
    await pms.send(house)
    await processed.wait_for([house.event_id])
    _, document = sample(EventKind.RESERVATION, "RSV-9", room_number=None)
    booking = await saas.publish_document({**document, "action": "created", "hotel_id": hotel})
    await processed.wait_for([booking.event.event_id])
    _, document = sample(EventKind.CHECKIN_CHECKOUT, "RSV-9", room_id="RM-201",
                         actual_checkout_time=None, additional_charges=None,
                         payment_status="pending")
    checkin = await pms.publish_document({**document, "action": "checked_in",
                                          "hotel_id": hotel})
    derived = derived_id(checkin.event.event_id, "room-status")
    await processed.wait_for([checkin.event.event_id, derived])

    base = POLICIES[EventKind.ROOM].topic
    room_topic = hub_env.topic(base)
    (record,) = [found for found in await read_topic(hub_env, room_topic)
                 if header_map(found.headers).get("ce_id") == str(derived)]
    verifier = Verifier.of(hub_env)
    assert verifier is not None
    assert verifier.verify(base, record.key, record.value,
                           list(record.headers)).identity == System.HOTEL_HUB.value

    # A stale room event after it, same key: once its refusal is in, a refusal of the
    # derived event (same key, so the same refusal partition, earlier) would be too.
    stale = room(publishers, hotel, "RM-201")
    await pms.send(stale)
    assert (await refusals.wait_for(stale.event_id)).reason_code is RefusalReason.STALE_VERSION
    assert str(derived) not in refusals.by_event

    unsigned = [(name, value) for name, value in record.headers
                if name not in (CREDENTIAL_HEADER, SIGNATURE_HEADER)]
    await write_as(hub_env, System.HOTEL_PMS, room_topic, record.value, record.key,
                   signer_of(hub_env, System.HOTEL_PMS).sign(base, record.key, record.value,
                                                             unsigned))
    refusal = await refusals.wait_for(derived)
    assert refusal.reason == "updated_by_system hotel-hub but signed by hotel-pms"
