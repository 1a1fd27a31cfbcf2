"""The local/test DynamoDB keeps DynamoDB's all-or-nothing transactions with its cheaper rollback,
and its queries answer in key order without sorting the whole table first."""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import Table

from devstack import moto_server as local_moto
from devstack.template import create_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef


@pytest.fixture(scope="module")
def table(moto_server: str) -> str:
    name = f"txn-{uuid.uuid4().hex[:8]}"
    create_table(boto3.client("dynamodb", endpoint_url=moto_server), name)
    return name


def _put(table: str, pk: str, **extra: AttributeValueTypeDef) -> TransactWriteItemTypeDef:
    return {
        "Put": {
            "TableName": table,
            "Item": {"pk": {"S": pk}, "sk": {"S": "X"}, **extra},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def test_failed_transaction_leaves_no_trace(moto_server: str, table: str) -> None:
    db = boto3.client("dynamodb", endpoint_url=moto_server)
    # Given an existing item with a counter at 1
    db.put_item(TableName=table, Item={"pk": {"S": "held"}, "sk": {"S": "X"}, "n": {"N": "1"}})
    db.put_item(TableName=table, Item={"pk": {"S": "taken"}, "sk": {"S": "X"}})
    bump: TransactWriteItemTypeDef = {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": "held"}, "sk": {"S": "X"}},
            "UpdateExpression": "SET n = :two",
            "ConditionExpression": "n = :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}},
        }
    }
    # When a transaction puts a new item, bumps the counter, and then fails on a taken key
    with pytest.raises(ClientError) as failure:
        db.transact_write_items(TransactItems=[_put(table, "new"), bump, _put(table, "taken")])
    # Then nothing of it remains: the new item is absent and the counter still 1
    assert failure.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "Item" not in db.get_item(TableName=table, Key={"pk": {"S": "new"}, "sk": {"S": "X"}})
    held = db.get_item(TableName=table, Key={"pk": {"S": "held"}, "sk": {"S": "X"}})["Item"]
    assert held["n"] == {"N": "1"}


def test_successful_transaction_applies_every_part(moto_server: str, table: str) -> None:
    db = boto3.client("dynamodb", endpoint_url=moto_server)
    # When a transaction of two new items succeeds
    db.transact_write_items(TransactItems=[_put(table, "a1", v={"S": "x"}), _put(table, "a2")])
    # Then both exist
    for pk in ("a1", "a2"):
        assert "Item" in db.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "X"}})


def _pages(db: Any, **query: Any) -> list[list[tuple[str, str]]]:
    """Every page of the query, each as the (pk, sk) of its items."""
    pages, start = [], None
    while True:
        reply = db.query(**query, **({"ExclusiveStartKey": start} if start else {}))
        pages.append([(i["pk"]["S"], i["sk"]["S"]) for i in reply["Items"]])
        start = reply.get("LastEvaluatedKey")
        if start is None:
            return pages


def test_queries_answer_in_key_order_page_by_page(moto_server: str) -> None:
    db = boto3.client("dynamodb", endpoint_url=moto_server)
    name = f"query-{uuid.uuid4().hex[:8]}"
    create_table(db, name)
    # Given items written in random order: 3 partitions of 7, spread over two index partitions
    # whose sort key runs against the table's
    items = [(f"p{p}", f"s{s:02d}", f"g{(p + s) % 2}", f"{20 - (3 * s + p):02d}") for p in range(3) for s in range(7)]
    for pk, sk, gpk, gsk in random.sample(items, len(items)):
        item = {"pk": {"S": pk}, "sk": {"S": sk}, "gsi1pk": {"S": gpk}, "gsi1sk": {"S": gsk}}
        db.put_item(TableName=name, Item=item)
    # (the query of this server, not moto's own, which sorts the whole table first)
    assert Table.query is local_moto._query_without_sorting_the_table

    # When a partition of the table is queried 3 at a time, forwards and backwards
    base: dict[str, Any] = {"TableName": name, "KeyConditionExpression": "pk = :p", "Limit": 3}
    forwards = _pages(db, **base, ExpressionAttributeValues={":p": {"S": "p1"}})
    backwards = _pages(db, **base, ExpressionAttributeValues={":p": {"S": "p1"}}, ScanIndexForward=False)
    # Then the pages follow the sort key, and together hold the partition once
    expected = [("p1", f"s{s:02d}") for s in range(7)]
    assert [key for page in forwards for key in page] == expected
    assert [key for page in backwards for key in page] == expected[::-1]
    assert [len(page) for page in forwards if page] == [3, 3, 1]

    # When an index partition is queried 4 at a time, whole and from a sort key on
    index: dict[str, Any] = {"TableName": name, "IndexName": "gsi1", "Limit": 4}
    whole = _pages(db, **index, KeyConditionExpression="gsi1pk = :g", ExpressionAttributeValues={":g": {"S": "g0"}})
    above = _pages(
        db,
        **index,
        KeyConditionExpression="gsi1pk = :g AND gsi1sk > :k",
        ExpressionAttributeValues={":g": {"S": "g0"}, ":k": {"S": "10"}},
    )
    # Then they follow the index's sort key
    in_g0 = sorted((gsk, pk, sk) for pk, sk, gpk, gsk in items if gpk == "g0")
    assert [key for page in whole for key in page] == [(pk, sk) for _, pk, sk in in_g0]
    assert [key for page in above for key in page] == [(pk, sk) for gsk, pk, sk in in_g0 if gsk > "10"]
    assert len(whole) > 2 and 0 < len([key for page in above for key in page]) < len(in_g0)

    # And a scan, page by page, still reads every item once
    scanned: list[tuple[str, str]] = []
    scan: dict[str, Any] = {"TableName": name, "Limit": 5}
    while True:
        reply = db.scan(**scan)
        scanned += [(i["pk"]["S"], i["sk"]["S"]) for i in reply["Items"]]
        if "LastEvaluatedKey" not in reply:
            break
        scan["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
    assert sorted(scanned) == sorted((pk, sk) for pk, sk, _, _ in items)
