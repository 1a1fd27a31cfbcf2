"""Money: integers in base units inside, `Decimal` strings at the edges. Never float."""

from __future__ import annotations

import re
from decimal import Decimal

# Plain decimal notation only: no sign, no exponent, no thousands separators.
_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$")


def parse_amount(text: str) -> Decimal:
    """Parse a customer-facing amount string; raise ValueError with a human reason."""
    if not isinstance(text, str) or not _AMOUNT.match(text):
        raise ValueError("must be a positive decimal string such as \"50.00\" (no sign, exponent or separators)")
    value = Decimal(text)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def to_base_units(value: Decimal, decimals: int) -> int:
    """Exact conversion; refuses amounts finer than the token's smallest unit."""
    if decimal_places(value) > decimals:
        raise ValueError(f"has more than {decimals} decimal places, the token's precision")
    return int(value.scaleb(decimals))


def format_units(units: int, decimals: int, min_places: int = 2) -> str:
    """Base units -> the exact string a customer must send (at least two decimals: "50.00")."""
    whole, frac = divmod(units, 10**decimals)
    digits = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    digits = digits.ljust(min(min_places, decimals), "0")
    return f"{whole}.{digits}" if digits else str(whole)
