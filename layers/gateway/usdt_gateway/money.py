"""Money: integers in base units inside, `Decimal` strings at the edges. Never float."""

from __future__ import annotations

import re
from decimal import Decimal

# The one rule for an amount's text, whether a JSON string or the text of a JSON number (docs/api.md):
# plain decimal notation, digits and at most one point; no sign, exponent, separators or leading
# zeros. How many digits may follow the point is the token's business (to_base_units), so that
# "0.0000001" is refused for its precision, not for its form.
AMOUNT_PATTERN = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
MAX_AMOUNT_CHARS = 64
_AMOUNT = re.compile(AMOUNT_PATTERN)


def parse_amount(text: str) -> Decimal:
    """Parse a customer-facing amount string; raise ValueError with a human reason."""
    if not isinstance(text, str) or not _AMOUNT.fullmatch(text):  # fullmatch: "50\n" is not an amount
        raise ValueError(
            'must be a decimal in plain notation such as "50.00" (digits and at most one point: '
            "no sign, exponent, separators or leading zeros)"
        )
    if len(text) > MAX_AMOUNT_CHARS:
        raise ValueError(f"must be at most {MAX_AMOUNT_CHARS} characters")
    value = Decimal(text)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _finite(value: Decimal) -> tuple[int, int, int]:
    """(sign, coefficient, exponent) of a finite Decimal: value = (-1)**sign * coefficient * 10**exponent."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError("must be a finite number")
    return sign, int("".join(map(str, digits)) or "0"), exponent


def decimal_places(value: Decimal) -> int:
    """Significant fraction digits, counted on the digits themselves: normalize() would round
    them to the context's 28 first."""
    _, coefficient, exponent = _finite(value)
    while coefficient and coefficient % 10 == 0:
        coefficient //= 10
        exponent += 1
    return max(0, -exponent) if coefficient else 0


def to_base_units(value: Decimal, decimals: int) -> int:
    """Exact conversion; refuses amounts finer than the token's smallest unit. Integer arithmetic
    on the digits: Decimal's scaleb would round past 28 significant digits (18 + 18 fit here)."""
    if decimal_places(value) > decimals:
        raise ValueError(f"has more than {decimals} decimal places, the token's precision")
    sign, coefficient, exponent = _finite(value)
    shift = exponent + decimals
    # A negative shift only cuts zeros: decimal_places checked there are no more significant digits.
    units: int = coefficient * 10**shift if shift >= 0 else coefficient // 10**-shift
    return -units if sign else units


def format_units(units: int, decimals: int, min_places: int = 2) -> str:
    """Base units -> the exact string a customer must send (at least two decimals: "50.00")."""
    whole, frac = divmod(units, 10**decimals)
    digits = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    digits = digits.ljust(min(min_places, decimals), "0")
    return f"{whole}.{digits}" if digits else str(whole)


def plain(value: Decimal) -> str:
    """A Decimal in positional notation ("0.0000001", never str()'s "1E-7"), for messages and
    stored configuration that are read back with parse_amount."""
    return format(value, "f")


def tolerance_units(amount_units: int, decimals: int, absolute: Decimal, percent: Decimal) -> int:
    """How much of an order may be missing when it is paid: the absolute tolerance, but never more
    than `percent` of the order (rounded down), so a small order cannot be paid with next to nothing."""
    relative = amount_units * to_base_units(percent, 2) // 10_000  # percent in basis points
    return max(0, min(to_base_units(absolute, decimals), relative))
