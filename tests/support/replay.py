"""An independent, plain-Python prediction of the hub's tables for a stream of valid events.

Written without the hub's rules module, from the design's meaning of each event,
so a test comparing the two catches a rule that does something else.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

HOLDING = {"tentative", "confirmed", "guaranteed", "checked_in", "checked_out"}
OUT = {"out_of_order", "out_of_service"}


def predict(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Expected rooms, customers, reservations and availability after `documents`, in order."""
    rooms: dict[str, dict[str, Any]] = {}
    customers: dict[str, dict[str, Any]] = {}
    stays: dict[str, dict[str, Any]] = {}
    for document in documents:
        kind, action, data = document["type"], document["action"], document["data"]
        if kind == "room":
            room = rooms.setdefault(data["room_id"], {"current_reservation_id": None,
                                                      "out": set()})
            room.update(status=data["status"], room_type=data["room_type"],
                        version=data["version"], date=data["availability_date"])
            if data["status"] in OUT:
                room["out"].add(data["availability_date"])
        elif kind == "customer":
            customers[data["customer_id"]] = {
                name: data.get(name) for name in ("name", "email", "phone", "rank_id",
                                                  "total_points", "updatable_by_pms", "version")
            }
        elif kind == "reservation":
            stays[data["reservation_id"]] = {
                "status": data["status"], "version": data["version"],
                "room_type": data["room_type"], "room_number": data.get("room_number"),
                "total_amount": data["total_amount"], "checkin_date": data["checkin_date"],
                "checkout_date": data["checkout_date"],
            }
        elif kind == "checkin_checkout":
            stay = stays[data["reservation_id"]]
            stay["status"] = action
            if action == "checked_in":
                rooms[data["room_id"]].update(status="occupied_clean",
                                              current_reservation_id=data["reservation_id"])
            elif action == "checked_out":
                rooms[data["room_id"]].update(status="vacant_dirty", current_reservation_id=None)

    in_house = Counter(room["room_type"] for room in rooms.values())
    sold: Counter[tuple[str, str]] = Counter()
    for stay in stays.values():
        if stay["status"] in HOLDING:
            night = date.fromisoformat(stay["checkin_date"])
            while night < date.fromisoformat(stay["checkout_date"]):
                sold[stay["room_type"], night.isoformat()] += 1
                night += timedelta(days=1)
    out_of_order: Counter[tuple[str, str]] = Counter()
    for room in rooms.values():
        for night in room["out"]:
            out_of_order[room["room_type"], night] += 1
    availability = {
        (room_type, night): {"in_house": in_house[room_type], "sold": sold[room_type, night],
                             "out_of_order": out_of_order[room_type, night]}
        for room_type, night in {*sold, *out_of_order}
    }
    return {"rooms": rooms, "customers": customers, "stays": stays,
            "in_house": dict(in_house), "availability": availability}
