"""Every rounding rule of the reports, in one place.

- Amounts are Decimal, in the currency's minor unit (ISO 4217: JPY 0 decimals, most 2).
- A stay's room amount is spread over its booked nights by cumulative rounding: night k
  of n gets R(total*(k+1)/n) - R(total*k/n), so the nights always add up to the total.
- Ratios are computed from summed figures, never averaged: occupancy to 4 decimals,
  ADR and RevPAR to the currency's minor unit, average length of stay to 2 decimals.
- R is ROUND_HALF_UP, as hotels' folios round.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
OTHER_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}
"""ISO 4217 currencies whose minor unit is not 2 decimals."""
RATE_PLACES = Decimal("0.0001")
NIGHTS_PLACES = Decimal("0.01")


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency`: Decimal('1') for JPY, Decimal('0.01') for GBP."""
    return Decimal(1).scaleb(-OTHER_MINOR_UNITS.get(currency.upper(), 2))


def to_currency(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def night_share(total: Decimal, night: int, nights: int, currency: str) -> Decimal:
    """The part of `total` booked night `night` (0-based) of `nights` recognises."""
    if not 0 <= night < nights:
        raise ValueError(f"night {night} is not one of the stay's {nights} nights")
    return night_shares(total, nights, currency)[night]


def night_shares(total: Decimal, nights: int, currency: str) -> list[Decimal]:
    """Every night's part of `total`, each cumulative rounding taken once."""
    marks = [to_currency(total * night / nights, currency) for night in range(nights + 1)]
    return [marks[night + 1] - marks[night] for night in range(nights)]


def ratio(part: Decimal | int, whole: Decimal | int, places: Decimal) -> Decimal:
    """part / whole rounded to `places`; 0 when there is no whole."""
    if not whole:
        return ZERO.quantize(places)
    return (Decimal(part) / Decimal(whole)).quantize(places, rounding=ROUND_HALF_UP)


def per_unit(amount: Decimal, units: int, currency: str) -> Decimal:
    """ADR and RevPAR: an amount per room-night, to the currency's minor unit."""
    return ratio(amount, units, minor_unit(currency))
