"""Request bodies read one way for the handler and for Signature-V1: nesting bounded before the
parser runs, numbers kept as their text, and V1's text of a body equal to json.dumps of the data a
Python client sent."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usdt_gateway import jsonbody

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
DATA = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(DATA)
def test_v1_text_of_a_body_is_json_dumps_of_what_was_sent(value: Any) -> None:
    # Given a body a Python client made with json.dumps (floats, escapes, brackets in strings)
    raw = json.dumps(value).encode()
    # When the gateway reads it
    parsed = jsonbody.loads(raw)
    # Then V1's text of it is exactly what the client signed: json.dumps(value, sort_keys=True)
    assert jsonbody.canonical(parsed) == json.dumps(value, sort_keys=True)


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(DATA, st.integers(min_value=0, max_value=40))
def test_nesting_is_measured_exactly_whatever_the_strings_hold(value: Any, extra: int) -> None:
    # Given data wrapped in `extra` more arrays (its strings may hold brackets and quotes)
    for _ in range(extra):
        value = [value]
    raw = json.dumps(value).encode()
    # Then it counts as too deep exactly when it nests deeper than 32 levels
    assert jsonbody.nesting_depth_exceeds(raw) == (depth(value) > jsonbody.MAX_DEPTH)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000, "nest deeper"),  # would be a RecursionError in json.loads
        (b"[" * 33 + b"]" * 33, "nest deeper"),
        (b'{"a": [1]]}', "do not pair up"),
        (b'{"amount": NaN}', "NaN is not a JSON value"),
        (b'{"amount": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"url": "\\ud800"}', "unpaired UTF-16 surrogate"),
        (b'{"n": 1' + b"0" * 64 + b"}", "longer than 64 characters"),
        (b"\xff\xfe", ""),
        (b'{"a": ', ""),
    ],
)
def test_bodies_the_api_does_not_read_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    # When a body that is not JSON the API reads is parsed
    with pytest.raises(jsonbody.JsonBodyError) as refused:
        jsonbody.loads(raw)
    # Then it is refused with its own reason, never a RecursionError or a 5xx
    assert reason in str(refused.value)


def test_numbers_keep_their_text_and_their_value_is_never_a_float() -> None:
    # Given numbers written in several ways, one with an exponent far beyond any float
    parsed = jsonbody.loads(b'{"a": 50.000000000000000001, "b": 1E2, "c": 12.50, "d": 7, "e": 1e999999999}')
    # Then each keeps its text, and its value is exact (int or Decimal)
    assert {k: v.text for k, v in parsed.items()} == {
        "a": "50.000000000000000001",
        "b": "1E2",
        "c": "12.50",
        "d": "7",
        "e": "1e999999999",
    }
    assert jsonbody.values(parsed) == {
        "a": Decimal("50.000000000000000001"),
        "b": Decimal(100),
        "c": Decimal("12.50"),
        "d": 7,
        "e": Decimal("1e999999999"),
    }
    assert jsonbody.canonical(parsed) == (
        '{"a": 50.000000000000000001, "b": 1E2, "c": 12.50, "d": 7, "e": 1e999999999}'
    )
