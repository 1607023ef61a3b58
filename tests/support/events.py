"""Valid sample documents of every kind, shared by the tests."""

from __future__ import annotations

from typing import Any

from streams.core.kinds import EventKind, System


def sample(kind: EventKind, entity: str = "X1", **data: Any) -> tuple[System, dict[str, Any]]:
    """(publishing system, event document) for one valid event of `kind`."""
    documents: dict[EventKind, tuple[System, str, dict[str, Any]]] = {
        EventKind.RESERVATION: (System.HOTEL_SAAS, "created", {
            "reservation_id": entity, "customer_id": "C1", "room_type": "DBL",
            "room_number": "201", "checkin_date": "2026-11-23", "checkout_date": "2026-11-25",
            "total_amount": "29000.500", "currency": "JPY", "status": "confirmed",
            "origin": "direct_web", "version": 1,
        }),
        EventKind.CUSTOMER: (System.HOTEL_MEMBER, "points_changed", {
            "customer_id": entity, "name": "Hanako Yamada", "email": "hanako@example.com",
            "rank_id": "gold", "total_points": 1200, "updated_fields": ["total_points"],
            "updatable_by_pms": True, "version": 3,
        }),
        EventKind.ROOM: (System.HOTEL_PMS, "maintenance_updated", {
            "room_id": entity, "room_number": "305", "room_type": "TWN",
            "status": "out_of_order", "availability_date": "2026-11-24",
            "base_price": "15800", "currency": "JPY", "maintenance_notes": "AC repair",
            "version": 2,
        }),
        EventKind.CHECKIN_CHECKOUT: (System.HOTEL_PMS, "checked_out", {
            "reservation_id": entity, "customer_id": "C1", "room_number": "201",
            "room_id": "RM-201", "actual_checkin_time": "2026-11-23T15:02:00+09:00",
            "actual_checkout_time": "2026-11-25T10:41:00+09:00",
            "additional_charges": "3250.5", "currency": "JPY", "payment_status": "completed",
        }),
        EventKind.ANALYTICS: (System.HOTEL_HUB, "daily_report", {
            "report_id": entity, "report_type": "revenue_occupancy", "schedule": "daily_23_00",
            "period_start": "2026-11-23", "period_end": "2026-11-23",
            "total_revenue": "1234567.5", "currency": "JPY", "occupancy_rate": "0.8125",
            "customer_count": 52, "average_stay_duration": "1.75",
            "detailed_data": '{"by_room_type": {"DBL": 20}}', "generated_by_system": "hotel-hub",
            "generated_at": "2026-11-23T23:00:00+09:00",
        }),
    }
    system, action, payload = documents[kind]
    return system, {"type": kind.value, "action": action, "data": {**payload, **data}}


STATUSES = ("vacant_dirty", "vacant_clean", "inspected", "occupied_clean")


def status_change(index: int, *, rooms: int, prefix: str = "RM") -> dict[str, Any]:
    """Change `index` of a housekeeping day: room `index % rooms` takes the next status, its
    version the index, so each room's versions rise in the order the changes are made."""
    number = f"{index % rooms:04d}"
    _, document = sample(EventKind.ROOM, f"{prefix}-{number}", room_number=number,
                         status=STATUSES[index % len(STATUSES)], maintenance_notes=None,
                         version=index + 1)
    return {**document, "action": "status_changed"}
