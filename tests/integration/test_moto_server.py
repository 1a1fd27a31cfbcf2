"""The local/test DynamoDB keeps DynamoDB's all-or-nothing transactions with its cheaper rollback."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError

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
