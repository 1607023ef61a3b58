"""Customers: hotel-member owns them; hotel-pms may change only what the hotel allows."""

from __future__ import annotations

from streams.core.kinds import System, event_type
from streams.core.models import CustomerAction, CustomerEvent, RefusalReason
from streams.core.rules.config import RuleSettings
from streams.core.rules.outcome import Outcome, already_applied, refused, versions_with
from streams.core.state import CustomerState, FieldSource, remember

CUSTOMER_FIELDS = ("name", "email", "phone", "rank_id", "total_points", "updatable_by_pms")
OWNER_ONLY_FIELDS = frozenset({"rank_id", "total_points", "updatable_by_pms"})



def apply_customer(
    current: CustomerState | None, event: CustomerEvent, rules: RuleSettings
) -> Outcome[CustomerState]:
    """hotel-member owns customers; hotel-pms may change only what the hotel allows."""
    if current is not None and current.applied.seen(event.event_id):
        return Outcome(duplicate=True)
    data, system = event.data, event.updated_by_system
    unknown_fields = sorted(set(data.updated_fields) - set(CUSTOMER_FIELDS))
    if unknown_fields:
        return refused(event, RefusalReason.FIELD_NOT_ALLOWED,
                        f"unknown customer fields {unknown_fields}", current)
    done: Outcome[CustomerState] | None = already_applied(current, event, data.version)
    if done is not None:
        return done
    changing = set(data.updated_fields)
    if system != System.HOTEL_MEMBER.value:
        if current is None:
            return refused(event, RefusalReason.UNKNOWN_ENTITY,
                            "hotel-member owns customers; this customer is not known yet", None)
        owner_only = sorted(changing & OWNER_ONLY_FIELDS)
        if owner_only or event.action is not CustomerAction.UPDATED:
            return refused(event, RefusalReason.OWNER_ONLY,
                            f"only hotel-member may {event.action} "
                            f"{', '.join(owner_only) or 'customers'}", current)
        if not current.updatable_by_pms:
            return refused(event, RefusalReason.NOT_UPDATABLE_BY_PMS,
                            "this customer does not allow changes from hotel-pms", current)
        forbidden = sorted(changing - rules.pms_customer_fields)
        if forbidden:
            return refused(event, RefusalReason.FIELD_NOT_ALLOWED,
                            f"hotel-pms may change only {sorted(rules.pms_customer_fields)}; "
                            f"not {forbidden}", current)
    elif current is None or event.action is CustomerAction.CREATED:
        changing = {name for name in CUSTOMER_FIELDS if name in data.model_fields_set} | changing
    else:
        changing |= {CustomerAction.RANK_CHANGED: {"rank_id"},
                     CustomerAction.POINTS_CHANGED: {"total_points"}}.get(event.action, set())
    base = current or CustomerState(hotel_id=event.hotel_id, customer_id=data.customer_id,
                                    version=0)
    source = FieldSource(system=system, event_id=str(event.event_id), version=data.version,
                         at=event.occurred_at)
    state = base.model_copy(update={
        **{name: getattr(data, name) for name in changing},
        "version": data.version, "versions": versions_with(current, event, data.version),
        "field_sources": {**base.field_sources, **dict.fromkeys(sorted(changing), source)},
        "applied": remember(base.applied, event.event_id, event_type(event.type, event.action),
                            event.occurred_at, event.updated_by_system),
    })
    return Outcome(state=state)
