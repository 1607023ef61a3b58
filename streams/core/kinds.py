"""The five event kinds of the design and what each one fixes.

The publisher takes priority, sync mode, delivery guarantee and targets from
here, never from the caller, so a CRITICAL event cannot be downgraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    RESERVATION = "reservation"
    CUSTOMER = "customer"
    ROOM = "room"
    CHECKIN_CHECKOUT = "checkin_checkout"
    ANALYTICS = "analytics"


class System(StrEnum):
    HOTEL_PMS = "hotel-pms"
    HOTEL_MEMBER = "hotel-member"
    HOTEL_SAAS = "hotel-saas"
    HOTEL_HUB = "hotel-hub"


class Priority(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class SyncMode(StrEnum):
    REALTIME = "realtime"
    BATCH = "batch"


class DeliveryGuarantee(StrEnum):
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"


@dataclass(frozen=True)
class KindPolicy:
    kind: EventKind
    topic: str
    priority: Priority
    sync_mode: SyncMode
    delivery_guarantee: DeliveryGuarantee
    targets: tuple[System, ...]
    publishers: frozenset[System]
    entity_key: str
    """The data field whose value keys the record, so one entity's events stay in order."""


_ALL_APPS = (System.HOTEL_MEMBER, System.HOTEL_PMS, System.HOTEL_SAAS)

POLICIES: dict[EventKind, KindPolicy] = {
    EventKind.RESERVATION: KindPolicy(
        EventKind.RESERVATION, "hotel.reservation", Priority.HIGH, SyncMode.REALTIME,
        DeliveryGuarantee.AT_LEAST_ONCE, _ALL_APPS,
        frozenset({System.HOTEL_PMS, System.HOTEL_MEMBER, System.HOTEL_SAAS}), "reservation_id",
    ),
    EventKind.CUSTOMER: KindPolicy(
        EventKind.CUSTOMER, "hotel.customer", Priority.HIGH, SyncMode.REALTIME,
        DeliveryGuarantee.AT_LEAST_ONCE, _ALL_APPS,
        frozenset({System.HOTEL_MEMBER, System.HOTEL_PMS}), "customer_id",
    ),
    EventKind.ROOM: KindPolicy(
        EventKind.ROOM, "hotel.room", Priority.HIGH, SyncMode.REALTIME,
        DeliveryGuarantee.AT_LEAST_ONCE, (System.HOTEL_MEMBER, System.HOTEL_PMS),
        frozenset({System.HOTEL_PMS}), "room_id",
    ),
    EventKind.CHECKIN_CHECKOUT: KindPolicy(
        EventKind.CHECKIN_CHECKOUT, "hotel.checkin_checkout", Priority.CRITICAL,
        SyncMode.REALTIME, DeliveryGuarantee.EXACTLY_ONCE, _ALL_APPS,
        frozenset({System.HOTEL_PMS}), "reservation_id",
    ),
    EventKind.ANALYTICS: KindPolicy(
        EventKind.ANALYTICS, "hotel.analytics", Priority.MEDIUM, SyncMode.BATCH,
        DeliveryGuarantee.AT_LEAST_ONCE, (System.HOTEL_MEMBER, System.HOTEL_SAAS),
        frozenset({System.HOTEL_HUB}), "report_id",
    ),
}

DEADLETTER_TOPIC = "hotel.deadletter"
REFUSAL_TOPIC = "hotel.refusals"
REFUSAL_CONTRACT = "refusal"
DELIVERY_LOG_TOPIC = "hotel.delivery-log"
DELIVERY_LOG_CONTRACT = "delivery_log"
WEBHOOK_DEADLETTER_TOPIC = "hotel.webhook-deadletter"

CONTRACT_TOPICS: dict[str, str] = {
    **{kind.value: policy.topic for kind, policy in POLICIES.items()},
    REFUSAL_CONTRACT: REFUSAL_TOPIC,
    DELIVERY_LOG_CONTRACT: DELIVERY_LOG_TOPIC,
}
"""Every Avro contract (`schemas/avro/<name>.avsc`) and the topic whose values it types."""


TYPE_PREFIX = "hotel"


def event_type(kind: str, action: str) -> str:
    """CloudEvents `type`, e.g. `hotel.reservation.created`."""
    return f"{TYPE_PREFIX}.{kind}.{action}"


def subject_of(contract: str) -> str:
    """Registry subject of a contract under Confluent's TopicNameStrategy."""
    return f"{CONTRACT_TOPICS[contract]}-value"


OUTBOX_TOPIC_PREFIX = "hotel.outbox."
"""`hotel.outbox.<system>`: the client's sync checkpoint (compacted, keyed by client id),
written in the same transaction as the events it marks as sent."""


def outbox_topic(system: str) -> str:
    return f"{OUTBOX_TOPIC_PREFIX}{system}"
