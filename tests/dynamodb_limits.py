"""DynamoDB's documented limits, checked on every DynamoDB call of the test run.

moto accepts requests that DynamoDB refuses: a GetItem on a 2,100-byte partition key, a Query
whose ExclusiveStartKey lies in another partition, a value no expression uses, 26 writes in one
batch, a 40-digit number... Code that makes such a call passes here and answers 500 once
deployed. `install()` (tests/conftest.py) hooks every DynamoDB client the tests create
(`before-parameter-build`, before botocore even serializes the request) and raises what DynamoDB
would: a ClientError with code ValidationException and a message that names the limit. Each
violation is also recorded, so a test fails even when the code under test catches the error.

The limits, from the DynamoDB Developer Guide, "Service, account, and table quotas in Amazon
DynamoDB" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html):
- Partition keys and sort keys: a partition key value is 1 to 2048 bytes, a sort key value 1 to
  1024 bytes (UTF-8); the same holds for an index's keys ("Attribute values": no empty string
  in a key attribute of a table or index).
- Data types: a Number has at most 38 digits of precision, magnitude 1E-130 to
  9.9999999999999999999999999999999999999E+125.
- Items: at most 400 KB, attribute names (UTF-8) and values together; nesting at most 32 levels.
- Expression parameters: any expression string at most 4 KB; one expression attribute name or
  value placeholder at most 255 bytes; all substitution variables together at most 2 MB; at
  most 300 operators or functions in an UpdateExpression; at most 100 operands for IN.
- Transactions: at most 100 items and 4 MB; no two actions on the same item.
- API-specific: BatchGetItem at most 100 items, BatchWriteItem at most 25 requests and 16 MB.
And from the API reference (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/):
BatchWriteItem and BatchGetItem refuse two requests for the same key; every expression attribute
name and value given must be used ("Value provided in ExpressionAttributeValues unused in
expressions"); Query's ExclusiveStartKey must hold exactly the key attributes of the table and of
the index queried and lie inside the key condition ("The provided starting key is outside query
boundaries based on provided conditions").
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import botocore.session
from botocore.exceptions import ClientError

from devstack.template import TABLE_RESOURCE, load_template

KB = 1024
MB = 1024 * KB
PARTITION_KEY_BYTES = 2048
SORT_KEY_BYTES = 1024
ITEM_BYTES = 400 * KB
NESTING = 32
NUMBER_DIGITS = 38
EXPRESSION_BYTES = 4 * KB
PLACEHOLDER_BYTES = 255
SUBSTITUTIONS_BYTES = 2 * MB
UPDATE_OPERATORS = 300
IN_OPERANDS = 100
TRANSACTION_ITEMS = 100
TRANSACTION_BYTES = 4 * MB
BATCH_GET_ITEMS = 100
BATCH_WRITE_REQUESTS = 25
BATCH_WRITE_BYTES = 16 * MB

EXPRESSIONS = (
    "KeyConditionExpression",
    "FilterExpression",
    "ConditionExpression",
    "UpdateExpression",
    "ProjectionExpression",
)
Value = dict[str, Any]  # one attribute value, e.g. {"S": "x"}


class LimitExceeded(ClientError):
    """What DynamoDB answers to a request over one of its limits."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__({"Error": {"Code": "ValidationException", "Message": message}}, operation)


# Every violation seen, in order; tests/conftest.py fails the test during which one was added.
VIOLATIONS: list[str] = []


@dataclass(frozen=True)
class KeySchema:
    partition: str
    sort: str | None


@dataclass(frozen=True)
class Schema:
    table: KeySchema
    indexes: dict[str, KeySchema]
    types: dict[str, str]  # key attribute -> S | N | B

    def index_keys(self) -> set[str]:
        return {name for k in self.indexes.values() for name in (k.partition, k.sort) if name}


def _key_schema(elements: list[dict[str, str]]) -> KeySchema:
    roles = {e["KeyType"]: e["AttributeName"] for e in elements}
    return KeySchema(roles["HASH"], roles.get("RANGE"))


@cache
def schema() -> Schema:
    """The table of template.yaml: every table of the test run is made from it."""
    props = load_template()["Resources"][TABLE_RESOURCE]["Properties"]
    return Schema(
        table=_key_schema(props["KeySchema"]),
        indexes={i["IndexName"]: _key_schema(i["KeySchema"]) for i in props.get("GlobalSecondaryIndexes", [])},
        types={a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]},
    )


# --- sizes ----------------------------------------------------------------------------------


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def _number_size(text: str) -> int:
    """About one byte per two significant digits, plus one (the Developer Guide's item sizes)."""
    digits = re.sub(r"[^0-9]", "", text.split("e")[0].split("E")[0]).strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: Any) -> int:
    """The stored size of one attribute value."""
    if not isinstance(value, dict) or len(value) != 1:
        return 0
    ((kind, v),) = value.items()
    if kind == "S":
        return _utf8(v)
    if kind == "N":
        return _number_size(str(v))
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: e}) for e in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + _utf8(k) + value_size(e) for k, e in v.items())
    return 0


def item_size(item: dict[str, Any]) -> int:
    return sum(_utf8(name) + value_size(value) for name, value in item.items())


# --- the checks -----------------------------------------------------------------------------


class _Check:
    """The checks of one request; `fail` raises the first violation found."""

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def fail(self, message: str) -> None:
        VIOLATIONS.append(f"{self.operation}: {message}")
        raise LimitExceeded(self.operation, f"{message} (a DynamoDB limit: see tests/dynamodb_limits.py)")

    # values

    def value(self, value: Any, where: str, depth: int = 0) -> None:
        if depth > NESTING:
            self.fail(f"{where}: nested deeper than {NESTING} levels")
        if not isinstance(value, dict) or len(value) != 1:
            return  # botocore's own validation reports malformed values
        ((kind, v),) = value.items()
        if kind in ("SS", "NS", "BS") and not v:
            self.fail(f"{where}: an empty set cannot be stored")
        if kind == "N":
            self.number(str(v), where)
        elif kind == "NS":
            for n in v:
                self.number(str(n), where)
        elif kind == "L":
            for e in v:
                self.value(e, where, depth + 1)
        elif kind == "M":
            for k, e in v.items():
                self.value(e, f"{where}.{k}", depth + 1)

    def number(self, text: str, where: str) -> None:
        try:
            number = Decimal(text)
        except InvalidOperation:
            self.fail(f"{where}: {text!r} is not a number")
            return
        if not number.is_finite():
            self.fail(f"{where}: {text} is not a finite number")
        if number == 0:
            return
        # Significant digits, counted without Decimal's 28-digit context (normalize() would round).
        digits = "".join(map(str, number.as_tuple().digits)).strip("0")
        if len(digits) > NUMBER_DIGITS:
            self.fail(f"{where}: a number has at most {NUMBER_DIGITS} digits of precision, {text} has {len(digits)}")
        if not Decimal("1E-130") <= abs(number) < Decimal("1E+126"):
            self.fail(f"{where}: {text} is outside the range of a DynamoDB number")

    def key_value(self, attribute: str, value: Any, *, sort: bool, where: str) -> None:
        """One value of a key attribute of the table or of an index."""
        expected = schema().types.get(attribute, "S")
        if not isinstance(value, dict) or list(value) != [expected]:
            self.fail(f"{where}: key attribute {attribute} must be of type {expected}, not {value!r:.80}")
            return
        raw = value[expected]
        size = _utf8(raw) if expected == "S" else _number_size(str(raw)) if expected == "N" else len(raw)
        limit = SORT_KEY_BYTES if sort else PARTITION_KEY_BYTES
        if size < 1:
            self.fail(f"{where}: key attribute {attribute} cannot be empty")
        if size > limit:
            kind = "sort" if sort else "partition"
            self.fail(f"{where}: the {kind} key {attribute} is {size} bytes, over the limit of {limit}")

    def key(self, key: Any, where: str, *, extra: KeySchema | None = None) -> None:
        """A primary key (Key, a key in a batch or transaction), or with `extra` an
        ExclusiveStartKey on an index: exactly the table's key attributes (and the index's)."""
        if not isinstance(key, dict):
            return
        table = schema().table
        wanted = {table.partition: False} | ({table.sort: True} if table.sort else {})
        if extra is not None:
            wanted |= {extra.partition: False} | ({extra.sort: True} if extra.sort else {})
        if set(key) != set(wanted):
            self.fail(f"{where}: the key must hold exactly {sorted(wanted)}, not {sorted(key)}")
        for attribute, sort in wanted.items():
            self.key_value(attribute, key[attribute], sort=sort, where=where)

    def item(self, item: Any, where: str) -> int:
        """An item written whole: its table key, its index keys if present, its values, its size."""
        if not isinstance(item, dict):
            return 0
        s = schema()
        self.key({k: v for k, v in item.items() if k in (s.table.partition, s.table.sort)}, where)
        for index in s.indexes.values():
            for attribute, sort in ((index.partition, False), (index.sort, True)):
                if attribute and attribute in item:
                    self.key_value(attribute, item[attribute], sort=sort, where=f"{where} (an index key)")
        for name, value in item.items():
            self.value(value, f"{where}.{name}")
        size = item_size(item)
        if size > ITEM_BYTES:
            self.fail(f"{where}: the item is {size} bytes, over the limit of {ITEM_BYTES} (400 KB)")
        return size

    # expressions

    def expressions(self, request: dict[str, Any], where: str) -> None:
        """The expressions of one request (or one transaction part) and their placeholders."""
        texts = {name: request[name] for name in EXPRESSIONS if isinstance(request.get(name), str)}
        names = request.get("ExpressionAttributeNames") or {}
        values = request.get("ExpressionAttributeValues") or {}
        for name, text in texts.items():
            if _utf8(text) > EXPRESSION_BYTES:
                self.fail(f"{where}: {name} is {_utf8(text)} bytes, over the limit of {EXPRESSION_BYTES} (4 KB)")
            for operands in re.findall(r"\bIN\s*\(([^)]*)\)", text, flags=re.IGNORECASE):
                if operands.count(",") + 1 > IN_OPERANDS:
                    self.fail(f"{where}: {name} has an IN with more than {IN_OPERANDS} operands")
        update = texts.get("UpdateExpression", "")
        operators = len(re.findall(r"[+\-]|\b(?:if_not_exists|list_append)\s*\(", update))
        if operators > UPDATE_OPERATORS:
            self.fail(f"{where}: UpdateExpression has {operators} operators, over the limit of {UPDATE_OPERATORS}")
        for placeholder in [*names, *values]:
            if _utf8(placeholder) > PLACEHOLDER_BYTES:
                self.fail(f"{where}: placeholder {placeholder[:20]}... is over {PLACEHOLDER_BYTES} bytes")
        substitutions = sum(_utf8(k) + _utf8(v) for k, v in names.items()) + sum(
            _utf8(k) + value_size(v) for k, v in values.items()
        )
        if substitutions > SUBSTITUTIONS_BYTES:
            self.fail(f"{where}: the substitution variables are {substitutions} bytes, over the limit of 2 MB")
        joined = " ".join(texts.values())
        used_names = set(re.findall(r"#[A-Za-z0-9_]+", joined))
        used_values = set(re.findall(r":[A-Za-z0-9_]+", joined))
        for kind, given, used in (
            ("ExpressionAttributeNames", set(names), used_names),
            ("ExpressionAttributeValues", set(values), used_values),
        ):
            if given - used:
                self.fail(f"{where}: {kind} unused in expressions: {sorted(given - used)}")
            if used - given:
                self.fail(f"{where}: {kind} not defined for {sorted(used - given)}")
        for placeholder, value in values.items():
            self.value(value, f"{where} {placeholder}")

    def updated_keys(self, request: dict[str, Any], where: str) -> None:
        """SET on an index key attribute: the value must be a valid key; table keys cannot change."""
        names = request.get("ExpressionAttributeNames") or {}
        values = request.get("ExpressionAttributeValues") or {}
        s = schema()
        roles = {i.partition: False for i in s.indexes.values()} | {i.sort: True for i in s.indexes.values() if i.sort}
        for target, placeholder in re.findall(
            r"(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)", request.get("UpdateExpression", "")
        ):
            attribute = names.get(target, target)
            if attribute in (s.table.partition, s.table.sort):
                self.fail(f"{where}: cannot update attribute {attribute}: it is part of the key")
            if attribute in roles and placeholder in values:
                self.key_value(attribute, values[placeholder], sort=roles[attribute], where=f"{where} (an index key)")


# --- Query's key condition and its starting key --------------------------------------------


def _key_conditions(request: dict[str, Any]) -> dict[str, Callable[[bytes], bool]]:
    """Attribute -> whether a value (UTF-8) satisfies the key condition on it."""
    text = request.get("KeyConditionExpression", "")
    names = request.get("ExpressionAttributeNames") or {}
    values = request.get("ExpressionAttributeValues") or {}

    def attr(token: str) -> str:
        return str(names.get(token, token))

    def val(token: str) -> bytes:
        v = values.get(token) or {}
        return str(v.get("S", v.get("N", ""))).encode()

    tests: dict[str, Callable[[bytes], bool]] = {}
    for a, low, high in re.findall(r"(#?\w+)\s+BETWEEN\s+(:\w+)\s+AND\s+(:\w+)", text, flags=re.IGNORECASE):
        lo, hi = val(low), val(high)

        def between(x: bytes, lo: bytes = lo, hi: bytes = hi) -> bool:
            return lo <= x <= hi

        tests[attr(a)] = between
    for a, prefix in re.findall(r"begins_with\s*\(\s*(#?\w+)\s*,\s*(:\w+)\s*\)", text):
        p = val(prefix)

        def begins_with(x: bytes, p: bytes = p) -> bool:
            return x.startswith(p)

        tests[attr(a)] = begins_with
    compare: dict[str, Callable[[bytes, bytes], bool]] = {
        "=": lambda x, y: x == y,
        "<": lambda x, y: x < y,
        "<=": lambda x, y: x <= y,
        ">": lambda x, y: x > y,
        ">=": lambda x, y: x >= y,
    }
    for a, op, v in re.findall(r"(#?\w+)\s*(<=|>=|=|<|>)\s*(:\w+)", text):
        bound, fn = val(v), compare[op]

        def compared(x: bytes, bound: bytes = bound, fn: Callable[[bytes, bytes], bool] = fn) -> bool:
            return fn(x, bound)

        tests[attr(a)] = compared
    return tests


def _key_condition_values(check: _Check, request: dict[str, Any], keys: KeySchema) -> None:
    """The values a key condition compares a key with are key values: within the key limits."""
    text = request.get("KeyConditionExpression", "")
    names = request.get("ExpressionAttributeNames") or {}
    values = request.get("ExpressionAttributeValues") or {}
    pairs = re.findall(r"(#?\w+)\s*(?:<=|>=|=|<|>)\s*(:\w+)", text)
    pairs += [
        (a, v)
        for a, lo, hi in re.findall(r"(#?\w+)\s+BETWEEN\s+(:\w+)\s+AND\s+(:\w+)", text, flags=re.IGNORECASE)
        for v in (lo, hi)
    ]
    pairs += re.findall(r"begins_with\s*\(\s*(#?\w+)\s*,\s*(:\w+)\s*\)", text)
    for token, placeholder in pairs:
        attribute = names.get(token, token)
        if placeholder in values and attribute in (keys.partition, keys.sort):
            check.key_value(attribute, values[placeholder], sort=attribute == keys.sort, where="KeyConditionExpression")


def _start_key(check: _Check, request: dict[str, Any], keys: KeySchema, index: KeySchema | None) -> None:
    start = request.get("ExclusiveStartKey")
    if start is None:
        return
    check.key(start, "ExclusiveStartKey", extra=index)
    for attribute, test in _key_conditions(request).items():
        if attribute in (keys.partition, keys.sort) and attribute in start:
            raw = start[attribute]
            value = str(raw.get("S", raw.get("N", ""))).encode() if isinstance(raw, dict) else b""
            if not test(value):
                check.fail(
                    f"The provided starting key is outside query boundaries based on provided conditions ({attribute})"
                )


# --- per operation --------------------------------------------------------------------------


def _single(check: _Check, params: dict[str, Any]) -> None:
    """GetItem, PutItem, UpdateItem, DeleteItem."""
    if "Item" in params:
        check.item(params["Item"], "Item")
    if "Key" in params:
        check.key(params["Key"], "Key")
    if "UpdateExpression" in params:
        check.updated_keys(params, "Update")
    check.expressions(params, check.operation)


def _query(check: _Check, params: dict[str, Any]) -> None:
    index_name = params.get("IndexName")
    indexes = schema().indexes
    if index_name is not None and index_name not in indexes:
        check.fail(f"the table has no index {index_name}")
    index = indexes.get(index_name) if index_name else None
    keys = index or schema().table
    check.expressions(params, "Query")
    _key_condition_values(check, params, keys)
    _start_key(check, params, keys, index)


def _scan(check: _Check, params: dict[str, Any]) -> None:
    index_name = params.get("IndexName")
    check.expressions(params, "Scan")
    if params.get("ExclusiveStartKey") is not None:
        check.key(
            params["ExclusiveStartKey"],
            "ExclusiveStartKey",
            extra=schema().indexes.get(index_name) if index_name else None,
        )


def _transact_write(check: _Check, params: dict[str, Any]) -> None:
    parts = params.get("TransactItems") or []
    if len(parts) > TRANSACTION_ITEMS:
        check.fail(f"a transaction holds at most {TRANSACTION_ITEMS} items, this one {len(parts)}")
    s = schema()
    seen: set[tuple[str, str]] = set()
    total = 0
    for n, part in enumerate(parts):
        ((action, request),) = part.items()
        where = f"TransactItems[{n}].{action}"
        if action == "Put":
            total += check.item(request.get("Item"), where)
            key = {k: v for k, v in (request.get("Item") or {}).items() if k in (s.table.partition, s.table.sort)}
        else:
            key = request.get("Key") or {}
            check.key(key, where)
            total += item_size(key)
        if action == "Update":
            check.updated_keys(request, where)
        check.expressions(request, where)
        identity = (str(request.get("TableName")), repr(sorted(key.items())))
        if identity in seen:
            check.fail("Transaction request cannot include multiple operations on one item")
        seen.add(identity)
    if total > TRANSACTION_BYTES:
        check.fail(f"a transaction holds at most 4 MB, this one {total} bytes")


def _transact_get(check: _Check, params: dict[str, Any]) -> None:
    parts = params.get("TransactItems") or []
    if len(parts) > TRANSACTION_ITEMS:
        check.fail(f"a transaction holds at most {TRANSACTION_ITEMS} items, this one {len(parts)}")
    seen: set[tuple[str, str]] = set()
    for n, part in enumerate(parts):
        request = part.get("Get") or {}
        check.key(request.get("Key"), f"TransactItems[{n}].Get")
        check.expressions(request, f"TransactItems[{n}].Get")
        identity = (str(request.get("TableName")), repr(sorted((request.get("Key") or {}).items())))
        if identity in seen:
            check.fail("Transaction request cannot include multiple operations on one item")
        seen.add(identity)


def _batch_write(check: _Check, params: dict[str, Any]) -> None:
    s = schema()
    count, total = 0, 0
    for table, requests in (params.get("RequestItems") or {}).items():
        seen: set[str] = set()
        for n, request in enumerate(requests):
            count += 1
            where = f"RequestItems[{table}][{n}]"
            if "PutRequest" in request:
                item = request["PutRequest"].get("Item") or {}
                total += check.item(item, where)
                key = {k: v for k, v in item.items() if k in (s.table.partition, s.table.sort)}
            else:
                key = request.get("DeleteRequest", {}).get("Key") or {}
                check.key(key, where)
            identity = repr(sorted(key.items()))
            if identity in seen:
                check.fail("Provided list of item keys contains duplicates")
            seen.add(identity)
    if count > BATCH_WRITE_REQUESTS:
        check.fail(f"BatchWriteItem takes at most {BATCH_WRITE_REQUESTS} requests, this one {count}")
    if total > BATCH_WRITE_BYTES:
        check.fail(f"BatchWriteItem writes at most 16 MB, this one {total} bytes")


def _batch_get(check: _Check, params: dict[str, Any]) -> None:
    count = 0
    for table, request in (params.get("RequestItems") or {}).items():
        seen: set[str] = set()
        for key in request.get("Keys") or []:
            count += 1
            check.key(key, f"RequestItems[{table}]")
            identity = repr(sorted(key.items()))
            if identity in seen:
                check.fail("Provided list of item keys contains duplicates")
            seen.add(identity)
        check.expressions(request, f"RequestItems[{table}]")
    if count > BATCH_GET_ITEMS:
        check.fail(f"BatchGetItem reads at most {BATCH_GET_ITEMS} items, this one {count}")


CHECKS: dict[str, Callable[[_Check, dict[str, Any]], None]] = {
    "GetItem": _single,
    "PutItem": _single,
    "UpdateItem": _single,
    "DeleteItem": _single,
    "Query": _query,
    "Scan": _scan,
    "TransactWriteItems": _transact_write,
    "TransactGetItems": _transact_get,
    "BatchWriteItem": _batch_write,
    "BatchGetItem": _batch_get,
}


def check(operation: str, params: dict[str, Any]) -> None:
    """Raise LimitExceeded when DynamoDB would refuse this request for one of the limits above."""
    run = CHECKS.get(operation)
    if run is not None:
        run(_Check(operation), params)


def _before_parameter_build(params: dict[str, Any], model: Any, **_: Any) -> None:
    check(model.name, params)


_installed: list[Callable[..., Any]] = []


def install() -> None:
    """Check every DynamoDB client created from now on, whichever session makes it (the
    gateway's aws.client, boto3's default session, the local stack's)."""
    if _installed:
        return
    original = botocore.session.Session.create_client

    def create_client(self: botocore.session.Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(self, service_name, *args, **kwargs)
        if service_name == "dynamodb":
            client.meta.events.register("before-parameter-build.dynamodb", _before_parameter_build)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    _installed.append(original)


@contextlib.contextmanager
def expected_violations() -> Iterator[list[str]]:
    """For a test that breaks a limit on purpose: the violations made inside, taken off the
    record the test run checks."""
    start = len(VIOLATIONS)
    found: list[str] = []
    try:
        yield found
    finally:
        found.extend(VIOLATIONS[start:])
        del VIOLATIONS[start:]
