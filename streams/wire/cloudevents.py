"""CloudEvents Kafka protocol binding, binary mode: attributes travel as `ce_*` headers.

Routers and the gateway filter on these without decoding the Avro body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streams.core.kinds import POLICIES, TYPE_PREFIX, EventKind, event_type
from streams.core.models import HotelEvent, Refusal, entity_id

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/avro"

Headers = list[tuple[str, bytes]]


def headers_for(event: HotelEvent, *, schema_url: str | None = None) -> Headers:
    attributes = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event.event_id),
        "ce_type": event_type(event.type, event.action),
        "ce_source": f"/{event.hotel_id}/{event.updated_by_system}",
        "ce_subject": entity_id(event),
        "ce_time": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "content-type": CONTENT_TYPE,
        # Extensions (lower-case alphanumerics, per the spec) for routing.
        "ce_hotelid": event.hotel_id,
        "ce_priority": event.priority,
        "ce_targets": ",".join(event.targets),
    }
    if schema_url:
        attributes["ce_dataschema"] = schema_url
    if event.correlation_id:
        attributes["ce_correlationid"] = event.correlation_id
    return [(name, value.encode()) for name, value in attributes.items()]


def refusal_headers(refusal: Refusal, *, also: Iterable[str] = ()) -> Headers:
    """Refusals are routed to the system whose event was refused (`ce_targets`), and
    `also` to others (the system that produced an event naming another). A refused event
    made offline is a conflict: every system the event targets hears of it too, since one
    of them made the change that stands."""
    if refusal.created_offline:
        also = (*also, *conflict_targets(refusal))
    attributes = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(refusal.refusal_id),
        "ce_type": f"{TYPE_PREFIX}.refusal.{refusal.reason_code}",
        "ce_source": f"/{refusal.hotel_id}/hotel-hub",
        "ce_subject": refusal.entity_id,
        "ce_time": refusal.refused_at.isoformat().replace("+00:00", "Z"),
        "content-type": CONTENT_TYPE,
        "ce_hotelid": refusal.hotel_id,
        "ce_targets": ",".join(dict.fromkeys((refusal.updated_by_system, *also))),
    }
    return [(name, value.encode()) for name, value in attributes.items()]


def conflict_targets(refusal: Refusal) -> tuple[str, ...]:
    """The systems the refused event's kind goes to (`event_type`: `hotel.<kind>.<action>`)."""
    kind = refusal.event_type.removeprefix(f"{TYPE_PREFIX}.").partition(".")[0]
    try:
        return tuple(target.value for target in POLICIES[EventKind(kind)].targets)
    except ValueError:  # not an event kind: nobody else to tell
        return ()


def header_map(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> dict[str, str]:
    """Headers as text, whichever shape the client library hands them over in."""
    if headers is None:
        return {}
    # A tuple or list (aiokafka's records) is tested first: the Mapping ABC check is slow.
    pairs = headers if isinstance(headers, tuple | list) else (
        headers.items() if isinstance(headers, Mapping) else headers)
    return {name: value.decode(errors="replace") for name, value in pairs if value is not None}
