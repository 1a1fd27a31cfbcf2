"""Request bodies as JSON, read one way for the handler and for Signature-V1.

- Nesting is bounded before the parser runs: json.loads recurses once per level, and a body of
  nothing but brackets would otherwise end in RecursionError (a 5xx) instead of a 400.
- Strict JSON: NaN and Infinity are refused, and so are lone UTF-16 surrogates (`"\\ud800"`),
  which no store, log or response can encode.
- Every number keeps its exact text (`Number`): an amount sent as a JSON number is read from its
  text, never through a float, and Signature-V1 signs the number as written in the body, so a
  signature over `50.0` cannot stand for a body that says `50.000000000000000001`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_DEPTH = 32  # objects and arrays inside each other; the API's bodies need 3
MAX_NUMBER_CHARS = 64  # longer numbers have no use here and int() refuses past 4300 digits

# A JSON string, escapes included; what is outside these is structure, numbers and literals.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonBodyError(ValueError):
    """The body is not JSON the API reads; the message says why."""


@dataclass(frozen=True, slots=True)
class Number:
    """A JSON number: its text exactly as in the body, and its value (int, or Decimal)."""

    text: str
    value: int | Decimal


def _number(text: str) -> Number:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonBodyError(f"a number is longer than {MAX_NUMBER_CHARS} characters")
    # A Decimal, whatever its exponent (1e999999999 costs nothing); no model field converts one to an
    # int (schemas.py: strict ints), which for such an exponent would take minutes.
    return Number(text, int(text) if not any(c in text for c in ".eE") else Decimal(text))


def _constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not a JSON value")


def nesting_depth_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when objects and arrays nest deeper than `limit` (or their brackets do not pair up).
    Strings are cut out first; each pass then removes the innermost empty pairs, one level a pass."""
    shape = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        if not shape:
            return False
        shape = shape.replace(b"[]", b"")
    return bool(shape)


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise JsonBodyError("a string holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def loads(raw: bytes) -> Any:
    """The body parsed, numbers as `Number`; JsonBodyError when it is not JSON the API reads."""
    if nesting_depth_exceeds(raw):
        raise JsonBodyError(f"objects and arrays nest deeper than {MAX_DEPTH} levels, or their brackets do not pair up")
    try:
        parsed = json.loads(raw, parse_float=_number, parse_int=_number, parse_constant=_constant)
    except JsonBodyError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise JsonBodyError(str(exc)) from None
    _check_strings(parsed)
    return parsed


def values(parsed: Any) -> Any:
    """What the handler validates: each `Number` as its value (int, or Decimal: never a float)."""
    if isinstance(parsed, Number):
        return parsed.value
    if isinstance(parsed, dict):
        return {k: values(v) for k, v in parsed.items()}
    if isinstance(parsed, list):
        return [values(v) for v in parsed]
    return parsed


def canonical(parsed: Any) -> str:
    """Signature-V1's text of a parsed body: json.dumps(body, sort_keys=True) with Python's
    default separators and ASCII escaping, each number written exactly as in the body. For a
    body a client made with json.dumps, that is json.dumps of the same data, sorted."""
    if isinstance(parsed, Number):
        return parsed.text
    if isinstance(parsed, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {canonical(v)}" for k, v in sorted(parsed.items())) + "}"
    if isinstance(parsed, list):
        return "[" + ", ".join(canonical(v) for v in parsed) + "]"
    return json.dumps(parsed)
