"""Money arithmetic: amount strings -> base units -> amount strings, exact at every size the API
accepts, whatever Decimal's default context would round to."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from usdt_gateway.money import decimal_places, format_units, parse_amount, plain, to_base_units, tolerance_units

LARGEST = "999999999999999999.999999999999999999"  # 18 integer and 18 fraction digits: parse_amount's limit


@st.composite
def amounts(draw: st.DrawFn, decimals: int) -> str:
    """A valid amount string with at most `decimals` fraction digits, up to the largest allowed."""
    whole = draw(st.integers(min_value=0, max_value=10**18 - 1))
    places = draw(st.integers(min_value=0, max_value=decimals))
    fraction = str(draw(st.integers(min_value=0, max_value=10**places - 1))).rjust(places, "0") if places else ""
    if whole == 0 and not fraction.strip("0"):
        fraction = "1".rjust(max(places, 1), "0")  # zero is refused; make it the smallest unit instead
    return f"{whole}.{fraction}" if fraction else str(whole)


def expected_units(text: str, decimals: int) -> int:
    """Base units from the digits themselves, with no Decimal arithmetic at all."""
    whole, _, fraction = text.partition(".")
    scale: int = 10**decimals
    return int(whole) * scale + int(fraction.ljust(decimals, "0") or "0")


@pytest.mark.parametrize("decimals", [6, 18])
@hypothesis_settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_round_trip_is_exact_up_to_the_largest_amount(decimals: int, data: st.DataObject) -> None:
    # Given any amount the API accepts, with no more fraction digits than the token has
    text = data.draw(amounts(decimals))
    # When it is parsed, converted to base units and formatted back
    units = to_base_units(parse_amount(text), decimals)
    back = format_units(units, decimals)
    # Then the units are exactly its digits and the string is the same amount, in plain notation
    assert units == expected_units(text, decimals)
    assert parse_amount(back) == parse_amount(text)
    assert "E" not in back.upper()


def test_the_largest_amount_keeps_all_36_digits_at_18_decimals() -> None:
    # Given the largest amount, 36 significant digits (more than Decimal's default 28)
    # When it is converted to base units of an 18-decimal token
    units = to_base_units(parse_amount(LARGEST), 18)
    # Then no digit is rounded away
    assert units == 10**36 - 1
    assert format_units(units, 18) == LARGEST


@pytest.mark.parametrize(
    ("text", "decimals"),
    [
        ("1.1234567", 6),  # one digit too many
        ("123456789012345678.1234567890123456789", 18),  # 37 digits: normalising would round them
    ],
)
def test_finer_than_the_token_is_refused(text: str, decimals: int) -> None:
    # Given an amount with more fraction digits than the token (Decimal built directly: the regex
    # of parse_amount caps at 18)
    value = Decimal(text)
    # When it is converted, Then it is refused with the token's precision in the reason
    with pytest.raises(ValueError, match=f"more than {decimals} decimal places"):
        to_base_units(value, decimals)


def test_decimal_places_counts_exactly_beyond_28_digits() -> None:
    # Given 37 significant digits, 19 of them after the point, and a value with trailing zeros
    # Then the places are counted from the digits, never from a rounded normal form
    assert decimal_places(Decimal("123456789012345678.1234567890123456789")) == 19
    assert decimal_places(Decimal("25.1000")) == 1
    assert decimal_places(Decimal("1E+3")) == 0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("1E+6"), "1000000"),
        (Decimal("0.01"), "0.01"),
        (Decimal("25.10"), "25.10"),
    ],
)
def test_plain_never_uses_an_exponent(value: Decimal, text: str) -> None:
    # Given Decimals whose str() would use an exponent, or not
    # Then plain() writes each in positional notation
    assert plain(value) == text


@pytest.mark.parametrize(
    ("amount", "absolute", "percent", "expected"),
    [
        (500_000, "1", "1", 5_000),  # 0.50 with a 1 USDT tolerance: 1 % of the order, 0.005
        (50_000_000, "0.009", "1", 9_000),  # 50.00: the absolute 0.009 is the smaller
        (50_000_000, "0.009", "0", 0),  # no relative tolerance: none at all
        (333, "1", "1", 3),  # rounded down, never more tolerant than configured
        (10**26, "0.5", "0.25", 5 * 10**17),  # 18 decimals: exact beyond 28 digits
    ],
)
def test_tolerance_is_the_smaller_of_absolute_and_relative(
    amount: int, absolute: str, percent: str, expected: int
) -> None:
    # Given an order amount in base units, an absolute tolerance in USDT and a relative one in %
    decimals = 18 if amount > 10**20 else 6
    # When the order's tolerance is computed, Then it is the smaller bound, in base units
    assert tolerance_units(amount, decimals, Decimal(absolute), Decimal(percent)) == expected
