"""Every DynamoDB call of the gateway. Item types and access patterns: see the comment above
`Table` in template.yaml. Each conditional write names the state transition it guards."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from usdt_gateway import aws
from usdt_gateway.config import settings
from usdt_gateway.errors import InvalidRequest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Items cross this module as plain attribute maps (dict[str, Any]); the domain reads them through
# typed records (records.py, cursor.Cursor, watchlist.WatchEntry).


def client() -> DynamoDBClient:
    return aws.client("dynamodb")  # type: ignore[no-any-return]  # botocore builds clients untyped


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
    ((kind, value),) = raw.items()
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


def _dump(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in item.items() if v is not None}


def _load(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    return {k: _deserialize(v) for k, v in raw.items()} if raw else None


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in values.items()}


def _failed_condition(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


# --- keys of each item type ---------------------------------------------------------------


def merchant_key(merchant_id: str) -> tuple[str, str]:
    return f"MERCHANT#{merchant_id}", "PROFILE"


def address_config_key(merchant_id: str, family: str) -> tuple[str, str]:
    return f"MERCHANT#{merchant_id}", f"ADDRCFG#{family}"


def contract_config_key(merchant_id: str, network: str) -> tuple[str, str]:
    """A merchant's network in contract mode: its DepositFactory (admin set-contract)."""
    return f"MERCHANT#{merchant_id}", f"CONTRACTCFG#{network}"


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


def held_key(network: str, block_number: int, txid: str, log_index: int) -> tuple[str, str]:
    """A deposit held in a final block (disputed, or awaiting a second source), for the operator."""
    return f"HELD#{network}", f"{block_number:012d}#{txid}#{log_index}"


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


def relayer_key(network: str) -> tuple[str, str]:
    """The settlement relayer of a network: its lease, next nonce and the sweep in flight."""
    return f"RELAYER#{network}", "RELAYER"


def settlement_key(settlement_id: str) -> tuple[str, str]:
    """A sweep carried to its end (completed or failed)."""
    return f"SETTLEMENT#{settlement_id}", "SETTLEMENT"


def settlement_batch_key(settlement_id: str) -> tuple[str, str]:
    """What a sweep covers (deposits, orders, units), written when its deposits are claimed."""
    return f"SETTLEMENT#{settlement_id}", "BATCH"


def sweep_candidate_key(network: str, merchant_id: str, address: str, txid: str, log_index: int) -> tuple[str, str]:
    """A credited deposit whose money is still on its contract-mode deposit address."""
    return f"SWEEP#{network}", f"{merchant_id}#{address}#{txid}#{log_index}"


def xpub_sweep_key(network: str, txid: str) -> tuple[str, str]:
    """A sweep of an xpub deposit address that the merchant's own tool made and recorded."""
    return f"XSWEEP#{network}#{txid}", "XSWEEP"


def refund_key(merchant_id: str, order_id: str, refund_id: str) -> tuple[str, str]:
    """A refund of an order's money: what the owner signs, then its transaction and outcome."""
    return f"REFUND#{merchant_id}#{order_id}", refund_id


def refunds_index_pk(network: str) -> str:
    """A network's refunds waiting for the relayer (signed, not closed), oldest first."""
    return f"REFUNDS#{network}"


def pool_index_pk(merchant_id: str, network: str, factory: str) -> str:
    """A merchant's swept deposit contracts that orders may take again (deposit_pool.py)."""
    return f"POOL#{merchant_id}#{network}#{factory}"


def pool_waiting_index_pk(network: str) -> str:
    """Deposit addresses on their way into the reuse pool, by when the settlement looks at them next."""
    return f"POOLWAIT#{network}"


def settlements_index_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}#SETTLEMENTS"


def deposits_index_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}#DEPOSITS"


def seen_index_pk(network: str) -> str:
    return f"SEEN#{network}"


def orders_index_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}#ORDERS"


def keys_index_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}#KEYS"


# --- plain reads and writes --------------------------------------------------------------


def get(pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
    resp = client().get_item(TableName=_table(), Key=_key(pk, sk), ConsistentRead=consistent)
    return _load(resp.get("Item"))


def get_many(keys: list[tuple[str, str]], *, consistent: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
    """Several items (at most 100, distinct keys) in one BatchGetItem round trip, by key; a
    missing item is absent from the answer. Keys DynamoDB leaves unprocessed are asked again."""
    request: dict[str, Any] = {_table(): {"Keys": [_key(pk, sk) for pk, sk in keys], "ConsistentRead": consistent}}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for attempt in range(5):
        resp = client().batch_get_item(RequestItems=request)
        for raw in resp.get("Responses", {}).get(_table(), []):
            item = _load(raw)
            if item:
                found[(item["pk"], item["sk"])] = item
        request = resp.get("UnprocessedKeys") or {}
        if not request:
            return found
        time.sleep(0.05 * 2**attempt)  # throttled: DynamoDB asks for a backoff before the rest
    raise RuntimeError("BatchGetItem left keys unprocessed after 5 attempts")


def put_new(item: dict[str, Any]) -> bool:
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


def put(item: dict[str, Any]) -> None:
    """Unconditional write, for configuration that an operator replaces as a whole."""
    client().put_item(TableName=_table(), Item=_dump(item))


def update(
    pk: str,
    sk: str,
    *,
    set_values: dict[str, Any],
    condition: str | None = None,
    names: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """SET the given attributes under an optional condition; None when the condition fails."""
    sets = ", ".join(f"#s{i} = :s{i}" for i in range(len(set_values)))
    all_names = {f"#s{i}": k for i, k in enumerate(set_values)} | (names or {})
    all_values = {f":s{i}": v for i, v in enumerate(set_values.values())} | (values or {})
    kwargs: dict[str, Any] = {
        "TableName": _table(),
        "Key": _key(pk, sk),
        "UpdateExpression": f"SET {sets}",
        "ExpressionAttributeNames": all_names,
        "ExpressionAttributeValues": _values(all_values),
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


def update_expression(
    pk: str, sk: str, *, expression: str, condition: str, values: dict[str, Any], names: dict[str, str] | None = None
) -> bool:
    """An UpdateItem with its own expression (ADD, REMOVE) under a condition; False when the
    condition fails."""
    kwargs: dict[str, Any] = {
        "TableName": _table(),
        "Key": _key(pk, sk),
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": _values(values),
    }
    if names:
        kwargs["ExpressionAttributeNames"] = names
    try:
        client().update_item(**kwargs)
    except ClientError as exc:
        if _failed_condition(exc):
            return False
        raise
    return True


def delete_if(pk: str, sk: str, *, condition: str, values: dict[str, Any]) -> bool:
    """Remove an item under a condition (its work done by whoever holds it); False when the
    condition fails, or the item is gone."""
    try:
        client().delete_item(
            TableName=_table(),
            Key=_key(pk, sk),
            ConditionExpression=condition,
            ExpressionAttributeValues=_values(values),
        )
    except ClientError as exc:
        if _failed_condition(exc):
            return False
        raise
    return True


def set_map_entry(pk: str, sk: str, attribute: str, key: str, value: Any) -> None:
    """Set `attribute[key]` on an existing item, creating the map if the item has none yet."""
    names = {"#a": attribute, "#k": key}
    for _ in range(2):  # a concurrent first entry can make both fail once
        try:
            client().update_item(
                TableName=_table(),
                Key=_key(pk, sk),
                UpdateExpression="SET #a.#k = :v",
                ConditionExpression="attribute_exists(#a)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_values({":v": value}),
            )
            return
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
        try:
            client().update_item(
                TableName=_table(),
                Key=_key(pk, sk),
                UpdateExpression="SET #a = :m",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#a)",
                ExpressionAttributeNames={"#a": attribute},
                ExpressionAttributeValues=_values({":m": {key: value}}),
            )
            return
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
    raise RuntimeError(f"{attribute} map entry did not settle")


def remove_map_entry(pk: str, sk: str, attribute: str, key: str) -> None:
    """Remove `attribute[key]`; removing a missing entry is not an error."""
    try:
        client().update_item(
            TableName=_table(),
            Key=_key(pk, sk),
            UpdateExpression="REMOVE #a.#k",
            ConditionExpression="attribute_exists(#a)",
            ExpressionAttributeNames={"#a": attribute, "#k": key},
        )
    except ClientError as exc:
        if not _failed_condition(exc):
            raise


# --- rate-limit meters ------------------------------------------------------------------


@dataclass(frozen=True)
class Meter:
    count: int
    blocked_until: int
    item: dict[str, Any]


def meter(pk: str, sk: str, window: int, *, require_active: bool, ttl: int | None = None) -> Meter | None:
    """Count one request in `window` on the item's counter; returns None when the item is
    missing or (with require_active) no longer active. One round trip in the common case."""
    active = " AND #st = :active" if require_active else ""
    exists = "attribute_exists(pk)" if require_active else "attribute_not_exists(pk) OR attribute_exists(pk)"
    names = {"#w": "rlWindow", "#c": "rlCount"} | ({"#st": "status"} if require_active else {})
    base_values: dict[str, Any] = {":w": window, ":one": 1} | ({":active": "active"} if require_active else {})
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
                    TableName=_table(),
                    Key=_key(pk, sk),
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=_values(base_values),
                    ReturnValues="ALL_NEW",
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
        TableName=_table(),
        Key=_key(pk, sk),
        UpdateExpression="SET blockedUntil = :u",
        ExpressionAttributeValues={":u": {"N": str(until_ms)}},
    )


# --- transactions -----------------------------------------------------------------------


class TransactionConflict(Exception):
    """A conditional part of a transaction failed; `reasons[i]` is that part's reason code."""

    def __init__(self, reasons: list[str], items: list[dict[str, Any] | None]) -> None:
        super().__init__(",".join(reasons))
        self.reasons = reasons
        self.items = items


def put_part(
    item: dict[str, Any],
    *,
    condition: str = "attribute_not_exists(pk)",
    values: dict[str, Any] | None = None,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A conditional Put inside a transaction (by default: the key must be free)."""
    put: dict[str, Any] = {
        "TableName": _table(),
        "Item": _dump(item),
        "ConditionExpression": condition,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:
        put["ExpressionAttributeValues"] = _values(values)
    if names:
        put["ExpressionAttributeNames"] = names
    return {"Put": put}


def update_part(
    pk: str, sk: str, *, expression: str, condition: str, values: dict[str, Any], names: dict[str, str] | None = None
) -> dict[str, Any]:
    """A conditional Update inside a transaction."""
    upd: dict[str, Any] = {
        "TableName": _table(),
        "Key": _key(pk, sk),
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": _values(values),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if names:
        upd["ExpressionAttributeNames"] = names
    return {"Update": upd}


def set_part(
    pk: str,
    sk: str,
    *,
    set_values: dict[str, Any],
    condition: str,
    values: dict[str, Any] | None = None,
    remove: tuple[str, ...] = (),
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A conditional Update inside a transaction that SETs attributes (and REMOVEs some)."""
    names = (
        {f"#s{i}": k for i, k in enumerate(set_values)} | {f"#r{i}": k for i, k in enumerate(remove)} | (names or {})
    )
    expression = "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(set_values)))
    if remove:
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
    all_values = {f":s{i}": v for i, v in enumerate(set_values.values())} | (values or {})
    return update_part(pk, sk, expression=expression, condition=condition, values=all_values, names=names)


def check_part(pk: str, sk: str, *, condition: str, values: dict[str, Any]) -> dict[str, Any]:
    """A ConditionCheck inside a transaction: an item it writes nothing to must be as read."""
    return {
        "ConditionCheck": {
            "TableName": _table(),
            "Key": _key(pk, sk),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": _values(values),
        }
    }


def delete_part(
    pk: str, sk: str, *, condition: str | None = None, values: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A Delete inside a transaction: unconditional (an index entry whose deposit moved or left),
    or under `condition`."""
    delete: dict[str, Any] = {"TableName": _table(), "Key": _key(pk, sk)}
    if condition:
        delete["ConditionExpression"] = condition
        delete["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if values:
            delete["ExpressionAttributeValues"] = _values(values)
    return {"Delete": delete}


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


def _items(resp: Any) -> list[dict[str, Any]]:
    return [i for i in (_load(raw) for raw in resp.get("Items", [])) if i]


# Two loops, not one with an optional IndexName: each function's queries then target one thing,
# the table or the index, as the IAM derivation (tests/aws_calls.py) reads them.
def _query_table(condition: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every base-table item a key condition selects, all pages, strongly consistent."""
    kwargs: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": _values(values),
        "ConsistentRead": True,
    }
    items: list[dict[str, Any]] = []
    while True:
        resp = client().query(**kwargs)
        items.extend(_items(resp))
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def query_partition(pk: str, *, sk_from: str) -> list[dict[str, Any]]:
    """Every item of a base-table partition from `sk_from` on, strongly consistent."""
    return _query_table("pk = :pk AND sk >= :from", {":pk": pk, ":from": sk_from})


def query_between(pk: str, *, sk_from: str, sk_to: str) -> list[dict[str, Any]]:
    """Every item of a base-table partition with `sk_from` <= sk <= `sk_to`, strongly consistent."""
    return _query_table("pk = :pk AND sk BETWEEN :from AND :to", {":pk": pk, ":from": sk_from, ":to": sk_to})


def query_index_all(index_pk: str, *, sk_to: str) -> list[dict[str, Any]]:
    """Every gsi1 item of `index_pk` up to `sk_to` (eventually consistent), oldest first, all pages."""
    kwargs: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": "gsi1",
        "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk <= :to",
        "ExpressionAttributeValues": _values({":pk": index_pk, ":to": sk_to}),
    }
    items: list[dict[str, Any]] = []
    while True:
        resp = client().query(**kwargs)
        items.extend(_items(resp))
        if "LastEvaluatedKey" not in resp:
            return items
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def first_in_index(index_pk: str, *, sk_to: str) -> dict[str, Any] | None:
    """The gsi1 item of `index_pk` with the lowest sort key up to `sk_to` (one eventually
    consistent Query of one item), or None."""
    resp = client().query(
        TableName=_table(),
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :pk AND gsi1sk <= :to",
        ExpressionAttributeValues=_values({":pk": index_pk, ":to": sk_to}),
        Limit=1,
    )
    items = _items(resp)
    return items[0] if items else None


# --- listing pages ----------------------------------------------------------------------
#
# A page of a merchant's listing (orders, deposits, the delivery log) is one stretch of gsi1.
# Its work is bounded whatever the filter: at most PAGE_CALLS DynamoDB calls, Query calls but for
# a container's first listing, which reads the listing key once. The first Query reads as many
# items as the page holds, the others (filtered listings only) READ_AHEAD items each, and
# DynamoDB stops any call at 1 MB. A filter that matches little therefore gives a short page,
# even an empty one, with a cursor; only a page without a cursor ends the listing.
#
# The cursor is the key to resume after, signed with the deployment's listing key (LISTKEY, made
# by the first listing that needs it) over the listing it belongs to: the index partition, the
# sort key range, the filters and the order. A cursor the gateway did not make, or one of another
# merchant, endpoint, filter or time window, is a 400 before DynamoDB sees it: DynamoDB refuses a
# starting key outside the query's partition or range (or over its key size limits) with an
# error, which would be a 500.

PAGE_CALLS = 3
READ_AHEAD = 500
CURSOR_MAX_CHARS = 1024  # a real cursor is about 200; a longer one is refused unread
_CURSOR = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$")  # payload.mac, base64url
_LISTING_SECRETS: dict[str, bytes] = {}  # table -> its listing key, once read


def listing_secret_key() -> tuple[str, str]:
    return "LISTKEY", "KEY"


def _listing_secret(*, create: bool) -> bytes | None:
    """The deployment's key for list cursors: one random 32-byte value in the table, read once per
    container. None when there is none yet and `create` is off (no cursor can be valid then)."""
    table = _table()
    if table in _LISTING_SECRETS:
        return _LISTING_SECRETS[table]
    pk, sk = listing_secret_key()
    item = get(pk, sk)
    if item is None:
        if not create:
            return None
        made = base64.b64encode(os.urandom(32)).decode()
        # none -> created: the first listing of a deployment makes it; a concurrent first one
        # loses the condition and reads the winner's.
        if not put_new({"pk": pk, "sk": sk, "secret": made}):
            item = get(pk, sk)
        item = item or {"secret": made}
    _LISTING_SECRETS[table] = secret = base64.b64decode(item["secret"])
    return secret


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, listing: str, payload: bytes) -> bytes:
    return hmac.new(secret, b"list-cursor-v1\n" + listing.encode() + b"\n" + payload, hashlib.sha256).digest()[:16]


def _sign_cursor(listing: str, key: dict[str, Any]) -> str:
    """The cursor after `key` (a gsi1 key: pk, sk, gsi1pk, gsi1sk); gsi1pk is the listing's own."""
    payload = json.dumps([key["pk"]["S"], key["sk"]["S"], key["gsi1sk"]["S"]], separators=(",", ":")).encode()
    secret = _listing_secret(create=True)
    assert secret is not None
    return f"{_b64(payload)}.{_b64(_mac(secret, listing, payload))}"


def _refused_cursor() -> InvalidRequest:
    return InvalidRequest(
        "cursor is not valid here: pass the nextCursor of the previous page unchanged, with the "
        "same other query parameters",
        code="INVALID_CURSOR",
    )


def _open_cursor(cursor: str, listing: str, index_pk: str, sk_from: str, sk_to: str) -> dict[str, Any]:
    """The ExclusiveStartKey a cursor of this listing stands for; InvalidRequest for any other."""
    if len(cursor) > CURSOR_MAX_CHARS or not _CURSOR.match(cursor):
        raise _refused_cursor()
    encoded, mac = cursor.split(".")
    try:
        payload, signature = _unb64(encoded), _unb64(mac)
    except ValueError as exc:  # base64 of an impossible length
        raise _refused_cursor() from exc
    if _b64(payload) != encoded or _b64(signature) != mac:  # canonical base64 only (a last character has spare bits)
        raise _refused_cursor()
    secret = _listing_secret(create=False)
    if secret is None or not hmac.compare_digest(signature, _mac(secret, listing, payload)):
        raise _refused_cursor()
    pk, sk, gsi1sk = json.loads(payload)  # ours: signed above
    if not sk_from <= gsi1sk <= sk_to:  # the listing's own range, already bound by the signature
        raise _refused_cursor()
    return {"pk": {"S": pk}, "sk": {"S": sk}, "gsi1pk": {"S": index_pk}, "gsi1sk": {"S": gsi1sk}}


def _index_key(item: dict[str, Any]) -> dict[str, Any]:
    return {name: {"S": item[name]} for name in ("pk", "sk", "gsi1pk", "gsi1sk")}


def query_index(
    index_pk: str,
    *,
    sk_from: str,
    sk_to: str,
    limit: int,
    cursor: str | None = None,
    filters: dict[str, Any] | None = None,
    newest_first: bool = True,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of gsi1 between two sort keys, optionally filtered by attribute equality: at most
    `limit` items, fewer when a filter matches little (see above); the cursor is None at the end."""
    names = {"#pk": "gsi1pk", "#sk": "gsi1sk"}
    values: dict[str, Any] = {":pk": index_pk, ":from": sk_from, ":to": sk_to}
    kwargs: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": "gsi1",
        "ScanIndexForward": not newest_first,
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
    listing = json.dumps(
        [index_pk, sk_from, sk_to, sorted((filters or {}).items()), newest_first], separators=(",", ":"), default=str
    )
    # A container's first listing reads the listing key (to check the cursor or sign the next).
    queries = PAGE_CALLS if _table() in _LISTING_SECRETS else PAGE_CALLS - 1
    if cursor is not None:
        kwargs["ExclusiveStartKey"] = _open_cursor(cursor, listing, index_pk, sk_from, sk_to)
    items: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for call in range(queries):
        wanted = limit - len(items)
        kwargs["Limit"] = max(wanted, READ_AHEAD) if filters and call else wanted
        resp = client().query(**kwargs)
        found = _items(resp)
        last = resp.get("LastEvaluatedKey")
        if len(found) > wanted:  # a read-ahead found more than the page holds: resume after its last item
            items.extend(found[:wanted])
            return items, _sign_cursor(listing, _index_key(items[-1]))
        items.extend(found)
        if not last:
            return items, None
        if len(items) == limit:
            return items, _sign_cursor(listing, last)
        kwargs["ExclusiveStartKey"] = last
    assert last is not None  # every call so far ended with more to read
    return items, _sign_cursor(listing, last)
