"""What the rules are told: the hotel's timezone, what hotel-pms may change, overbooking."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from streams.core.limits import Limits


@dataclass(frozen=True)
class RuleSettings:
    timezone: str = "Asia/Tokyo"
    """The hotels' time zone, unless `hotel_timezones` names another for a hotel."""
    hotel_timezones: Mapping[str, str] = field(default_factory=dict)
    pms_customer_fields: frozenset[str] = frozenset({"email", "phone"})
    """Customer fields hotel-pms may change, where the customer allows it."""
    overbooking: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Rooms a hotel may sell beyond what it has, per hotel and room type: a count ("2")
    or a share of the rooms of that type ("5%"); "*" stands for any hotel or type."""
    limits: Limits = field(default_factory=Limits)
    order_grace_s: float = 120.0
    """How long, in the hotel's own event time, a booking or check-in waits for a room type
    or room the hub has not seen before it is refused: events of different partitions
    have no order, so a backlog can deliver a booking before its room. 0 refuses at once."""

    def timezone_of(self, hotel_id: str) -> str:
        """The time zone of `hotel_id`'s business days (arrival, departure, report days)."""
        return self.hotel_timezones.get(hotel_id, self.timezone)

    def allowance(self, hotel_id: str, room_type: str, in_house: int) -> int:
        """How far below zero `room_type`'s free count may go at `hotel_id`."""
        hotel, anywhere = self.overbooking.get(hotel_id, {}), self.overbooking.get("*", {})
        for raw in (hotel.get(room_type), hotel.get("*"), anywhere.get(room_type),
                    anywhere.get("*")):
            if raw is not None:
                return parse_allowance(raw, in_house)
        return 0


def parse_allowance(raw: str, in_house: int) -> int:
    """"2" -> 2 rooms; "5%" -> 5 % of the rooms in the house, rounded down."""
    text = raw.strip()
    try:
        if text.endswith("%"):
            return int(Decimal(text[:-1]) * in_house / 100)
        return int(text)
    except (ArithmeticError, ValueError):
        raise ValueError(f"overbooking allowance {raw!r} is neither a count nor a percent"
                         ) from None
