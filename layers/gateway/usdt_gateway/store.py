"""Every DynamoDB call of the gateway. Item types and access patterns: see the comment above
`Table` in template.yaml. Each conditional write names the state transition it guards."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from usdt_gateway import aws
from usdt_gateway.config import settings
from usdt_gateway.errors import InvalidRequest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]


def client() -> DynamoDBClient:
    return aws.client("dynamodb")


def _serialize(value: Any) -> dict[str, Any]:
    """Python -> DynamoDB attribute value, for the types the gateway stores."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Decimal)):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {k: _serialize(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [_serialize(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def _deserialize(raw: dict[str, Any]) -> Any:
    (kind, value), = raw.items()
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else number
    if kind == "M":
        return {k: _deserialize(v) for k, v in value.items()}
    if kind == "L":
        return [_deserialize(v) for v in value]
    if kind == "NULL":
        return None
    if kind in ("SS", "NS"):
        return {_deserialize({kind[0]: v}) for v in value}
    return value  # S, BOOL, B


def _table() -> str:
    return settings().table_name


def _dump(item: Item) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in item.items() if v is not None}


def _load(raw: dict[str, Any] | None) -> Item | None:
    return {k: _deserialize(v) for k, v in raw.items()} if raw else None


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _values(values: Item) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in values.items()}


def _failed_condition(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


# --- keys of each item type ---------------------------------------------------------------

def merchant_key(merchant_id: str) -> tuple[str, str]:
    return f"MERCHANT#{merchant_id}", "PROFILE"


def address_config_key(merchant_id: str, family: str) -> tuple[str, str]:
    return f"MERCHANT#{merchant_id}", f"ADDRCFG#{family}"


def xpub_index_key(family: str, fingerprint: str) -> tuple[str, str]:
    """The next derivation index an xpub may hand out, kept across address configs."""
    return f"XPUB#{family}#{fingerprint}", "INDEX"


def api_key_key(api_key: str) -> tuple[str, str]:
    return f"APIKEY#{api_key}", "KEY"


def order_key(merchant_id: str, order_id: str) -> tuple[str, str]:
    return f"ORDER#{merchant_id}#{order_id}", "ORDER"


def public_key(public_id: str) -> tuple[str, str]:
    return f"PUBLIC#{public_id}", "PUBLIC"


def address_key(network: str, address: str) -> tuple[str, str]:
    return f"ADDR#{network}#{address}", "ADDR"


def reservation_key(network: str, address: str, units: int) -> tuple[str, str]:
    return f"RESV#{network}#{address}#{units}", "RESV"


def watch_key(network: str, created_at: int, order_pk: str) -> tuple[str, str]:
    return f"WATCH#{network}", f"{created_at:013d}#{order_pk}"


def deposit_key(network: str, txid: str, log_index: int) -> tuple[str, str]:
    return f"DEP#{network}#{txid}#{log_index}", "DEP"


def ledger_key(network: str, block_number: int, txid: str, log_index: int) -> tuple[str, str]:
    """A final deposit by block, so a re-read range can be compared with what was recorded in it."""
    return f"LEDGER#{network}", f"{block_number:012d}#{txid}#{log_index}"


def event_key(event_id: str) -> tuple[str, str]:
    return f"EVENT#{event_id}", "EVENT"


def outbox_key(event_id: str) -> tuple[str, str]:
    return f"OUTBOX#{event_id}", "OUTBOX"


OUTBOX_INDEX_PK = "OUTBOX"


def webhook_slot_key(merchant_id: str, slot: int) -> tuple[str, str]:
    return f"MERCHANT#{merchant_id}", f"WHSLOT#{slot}"


def events_index_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}#EVENTS"


def cursor_key(network: str) -> tuple[str, str]:
    return f"CURSOR#{network}", "CURSOR"


def deposits_index_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}#DEPOSITS"


def seen_index_pk(network: str) -> str:
    return f"SEEN#{network}"


def orders_index_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}#ORDERS"


def keys_index_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}#KEYS"


# --- plain reads and writes --------------------------------------------------------------

def get(pk: str, sk: str, *, consistent: bool = True) -> Item | None:
    resp = client().get_item(TableName=_table(), Key=_key(pk, sk), ConsistentRead=consistent)
    return _load(resp.get("Item"))


def put_new(item: Item) -> bool:
    """Create an item that must not exist yet (none -> created). False if it already exists."""
    try:
        client().put_item(TableName=_table(), Item=_dump(item), ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if _failed_condition(exc):
            return False
        raise
    return True


def delete(pk: str, sk: str) -> None:
    """Remove an item (a marker whose work is done); removing a missing one is not an error."""
    client().delete_item(TableName=_table(), Key=_key(pk, sk))


def put(item: Item) -> None:
    """Unconditional write, for configuration that an operator replaces as a whole."""
    client().put_item(TableName=_table(), Item=_dump(item))


def update(pk: str, sk: str, *, set_values: Item, condition: str | None = None,
           names: dict[str, str] | None = None, values: Item | None = None) -> Item | None:
    """SET the given attributes under an optional condition; None when the condition fails."""
    sets = ", ".join(f"#s{i} = :s{i}" for i in range(len(set_values)))
    all_names = {f"#s{i}": k for i, k in enumerate(set_values)} | (names or {})
    all_values = {f":s{i}": v for i, v in enumerate(set_values.values())} | (values or {})
    kwargs: dict[str, Any] = {
        "TableName": _table(), "Key": _key(pk, sk), "UpdateExpression": f"SET {sets}",
        "ExpressionAttributeNames": all_names, "ExpressionAttributeValues": _values(all_values),
        "ReturnValues": "ALL_NEW",
    }
    if condition:
        kwargs["ConditionExpression"] = condition
    try:
        resp = client().update_item(**kwargs)
    except ClientError as exc:
        if _failed_condition(exc):
            return None
        raise
    return _load(resp.get("Attributes"))


def set_map_entry(pk: str, sk: str, attribute: str, key: str, value: Any) -> None:
    """Set `attribute[key]` on an existing item, creating the map if the item has none yet."""
    names = {"#a": attribute, "#k": key}
    for _ in range(2):  # a concurrent first entry can make both fail once
        try:
            client().update_item(TableName=_table(), Key=_key(pk, sk), UpdateExpression="SET #a.#k = :v",
                                 ConditionExpression="attribute_exists(#a)", ExpressionAttributeNames=names,
                                 ExpressionAttributeValues=_values({":v": value}))
            return
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
        try:
            client().update_item(TableName=_table(), Key=_key(pk, sk), UpdateExpression="SET #a = :m",
                                 ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#a)",
                                 ExpressionAttributeNames={"#a": attribute},
                                 ExpressionAttributeValues=_values({":m": {key: value}}))
            return
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
    raise RuntimeError(f"{attribute} map entry did not settle")


def remove_map_entry(pk: str, sk: str, attribute: str, key: str) -> None:
    """Remove `attribute[key]`; removing a missing entry is not an error."""
    try:
        client().update_item(TableName=_table(), Key=_key(pk, sk), UpdateExpression="REMOVE #a.#k",
                             ConditionExpression="attribute_exists(#a)",
                             ExpressionAttributeNames={"#a": attribute, "#k": key})
    except ClientError as exc:
        if not _failed_condition(exc):
            raise


# --- rate-limit meters ------------------------------------------------------------------

@dataclass(frozen=True)
class Meter:
    count: int
    blocked_until: int
    item: Item


def meter(pk: str, sk: str, window: int, *, require_active: bool, ttl: int | None = None) -> Meter | None:
    """Count one request in `window` on the item's counter; returns None when the item is
    missing or (with require_active) no longer active. One round trip in the common case."""
    active = " AND #st = :active" if require_active else ""
    exists = "attribute_exists(pk)" if require_active else "attribute_not_exists(pk) OR attribute_exists(pk)"
    names = {"#w": "rlWindow", "#c": "rlCount"} | ({"#st": "status"} if require_active else {})
    base_values: Item = {":w": window, ":one": 1} | ({":active": "active"} if require_active else {})
    ttl_set = ", #ttl = :ttl" if ttl is not None else ""
    if ttl is not None:
        names["#ttl"] = "ttl"
        base_values[":ttl"] = ttl
    attempts = [
        # Same window: count this request (window w -> count + 1).
        (f"SET #c = #c + :one{ttl_set}", f"#w = :w{active}"),
        # New window: start counting again (window < w -> window w, count 1).
        (f"SET #w = :w, #c = :one{ttl_set}", f"({exists}) AND (attribute_not_exists(#w) OR #w < :w){active}"),
    ]
    for _ in range(2):  # a concurrent reset of the window can make both fail once
        for expression, condition in attempts:
            try:
                resp = client().update_item(
                    TableName=_table(), Key=_key(pk, sk), UpdateExpression=expression,
                    ConditionExpression=condition, ExpressionAttributeNames=names,
                    ExpressionAttributeValues=_values(base_values), ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if not _failed_condition(exc):
                    raise
                old = _load(exc.response.get("Item"))  # type: ignore[arg-type]
                if require_active and (old is None or old.get("status") != "active"):
                    return None
                continue
            item = _load(resp["Attributes"]) or {}
            return Meter(int(item.get("rlCount", 0)), int(item.get("blockedUntil", 0)), item)
    raise RuntimeError("rate-limit meter did not settle")


def block(pk: str, sk: str, until_ms: int) -> None:
    """Shut out a key or IP until `until_ms` (limited -> blocked)."""
    client().update_item(
        TableName=_table(), Key=_key(pk, sk), UpdateExpression="SET blockedUntil = :u",
        ExpressionAttributeValues={":u": {"N": str(until_ms)}},
    )


# --- transactions -----------------------------------------------------------------------

class TransactionConflict(Exception):
    """A conditional part of a transaction failed; `reasons[i]` is that part's reason code."""

    def __init__(self, reasons: list[str], items: list[Item | None]) -> None:
        super().__init__(",".join(reasons))
        self.reasons = reasons
        self.items = items


def put_part(item: Item, *, condition: str = "attribute_not_exists(pk)", values: Item | None = None,
             names: dict[str, str] | None = None) -> dict[str, Any]:
    """A conditional Put inside a transaction (by default: the key must be free)."""
    put: dict[str, Any] = {"TableName": _table(), "Item": _dump(item), "ConditionExpression": condition,
                           "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    if values:
        put["ExpressionAttributeValues"] = _values(values)
    if names:
        put["ExpressionAttributeNames"] = names
    return {"Put": put}


def update_part(pk: str, sk: str, *, expression: str, condition: str, values: Item,
                names: dict[str, str] | None = None) -> dict[str, Any]:
    """A conditional Update inside a transaction."""
    upd: dict[str, Any] = {"TableName": _table(), "Key": _key(pk, sk), "UpdateExpression": expression,
                           "ConditionExpression": condition, "ExpressionAttributeValues": _values(values),
                           "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    if names:
        upd["ExpressionAttributeNames"] = names
    return {"Update": upd}


def set_part(pk: str, sk: str, *, set_values: Item, condition: str, values: Item | None = None,
             remove: tuple[str, ...] = (), names: dict[str, str] | None = None) -> dict[str, Any]:
    """A conditional Update inside a transaction that SETs attributes (and REMOVEs some)."""
    names = ({f"#s{i}": k for i, k in enumerate(set_values)} | {f"#r{i}": k for i, k in enumerate(remove)}
             | (names or {}))
    expression = "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_values)))
    if remove:
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
    all_values = {f":s{i}": v for i, v in enumerate(set_values.values())} | (values or {})
    return update_part(pk, sk, expression=expression, condition=condition, values=all_values, names=names)


def delete_part(pk: str, sk: str) -> dict[str, Any]:
    """An unconditional Delete inside a transaction (an index entry whose deposit moved or left)."""
    return {"Delete": {"TableName": _table(), "Key": _key(pk, sk)}}


def transact(parts: list[dict[str, Any]]) -> None:
    """All-or-nothing conditional writes; TransactionConflict says which part failed and why."""
    try:
        client().transact_write_items(TransactItems=parts)  # type: ignore[arg-type]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        reasons = exc.response.get("CancellationReasons", [])
        codes = [r.get("Code", "None") for r in reasons]
        if not {"ConditionalCheckFailed", "TransactionConflict"} & set(codes):
            raise
        raise TransactionConflict(codes, [_load(r.get("Item")) for r in reasons]) from exc  # type: ignore[arg-type]


# --- queries ----------------------------------------------------------------------------

def _items(resp: Any) -> list[Item]:
    return [i for i in (_load(raw) for raw in resp.get("Items", [])) if i]


# Two loops, not one with an optional IndexName: each function's queries then target one thing,
# the table or the index, as the IAM derivation (tests/aws_calls.py) reads them.
def _query_table(condition: str, values: Item) -> list[Item]:
    """Every base-table item a key condition selects, all pages, strongly consistent."""
    kwargs: dict[str, Any] = {"TableName": _table(), "KeyConditionExpression": condition,
                              "ExpressionAttributeValues": _values(values), "ConsistentRead": True}
    items: list[Item] = []
    while True:
        resp = client().query(**kwargs)
        items.extend(_items(resp))
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def query_partition(pk: str, *, sk_from: str) -> list[Item]:
    """Every item of a base-table partition from `sk_from` on, strongly consistent."""
    return _query_table("pk = :pk AND sk >= :from", {":pk": pk, ":from": sk_from})


def query_between(pk: str, *, sk_from: str, sk_to: str) -> list[Item]:
    """Every item of a base-table partition with `sk_from` <= sk <= `sk_to`, strongly consistent."""
    return _query_table("pk = :pk AND sk BETWEEN :from AND :to", {":pk": pk, ":from": sk_from, ":to": sk_to})


def query_index_all(index_pk: str, *, sk_to: str) -> list[Item]:
    """Every gsi1 item of `index_pk` up to `sk_to` (eventually consistent), oldest first, all pages."""
    kwargs: dict[str, Any] = {"TableName": _table(), "IndexName": "gsi1",
                              "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk <= :to",
                              "ExpressionAttributeValues": _values({":pk": index_pk, ":to": sk_to})}
    items: list[Item] = []
    while True:
        resp = client().query(**kwargs)
        items.extend(_items(resp))
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, index_pk: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        # Exactly the shape of a gsi1 LastEvaluatedKey: four string keys, on this listing's index.
        well_formed = isinstance(key, dict) and set(key) == {"pk", "sk", "gsi1pk", "gsi1sk"} and all(
            isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values())
        if not well_formed or key["gsi1pk"]["S"] != index_pk:
            raise ValueError("cursor of another listing")
    except ValueError as exc:
        raise InvalidRequest("cursor is not valid: pass the nextCursor of the previous page unchanged",
                             code="INVALID_CURSOR") from exc
    return key


def query_index(index_pk: str, *, sk_from: str, sk_to: str, limit: int, cursor: str | None = None,
                filters: dict[str, Any] | None = None, newest_first: bool = True) -> tuple[list[Item], str | None]:
    """One page of gsi1 between two sort keys, optionally filtered by attribute equality."""
    names = {"#pk": "gsi1pk", "#sk": "gsi1sk"}
    values: Item = {":pk": index_pk, ":from": sk_from, ":to": sk_to}
    kwargs: dict[str, Any] = {
        "TableName": _table(), "IndexName": "gsi1", "ScanIndexForward": not newest_first,
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :from AND :to",
    }
    if filters:
        parts = []
        for i, (attr, value) in enumerate(filters.items()):
            names[f"#f{i}"] = attr
            values[f":f{i}"] = value
            parts.append(f"#f{i} = :f{i}")
        kwargs["FilterExpression"] = " AND ".join(parts)
    kwargs["ExpressionAttributeNames"] = names
    kwargs["ExpressionAttributeValues"] = _values(values)
    if cursor:
        kwargs["ExclusiveStartKey"] = _decode_cursor(cursor, index_pk)
    items: list[Item] = []
    # A filter can leave a page short: keep reading until the page is full or the range ends.
    while True:
        kwargs["Limit"] = limit - len(items)
        resp = client().query(**kwargs)
        items.extend(i for i in (_load(raw) for raw in resp.get("Items", [])) if i)
        last = resp.get("LastEvaluatedKey")
        if not last or len(items) >= limit:
            return items, _encode_cursor(last) if last else None
        kwargs["ExclusiveStartKey"] = last
