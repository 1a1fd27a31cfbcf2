"""The test run's DynamoDB limit checker (tests/dynamodb_limits.py): installed on every DynamoDB
client, it refuses what DynamoDB refuses and moto accepts, before the request leaves the process.
The client here points at a closed port: a request the checker lets through fails to connect,
one it refuses never tries."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import botocore.exceptions
import botocore.session
import pytest
from botocore.config import Config

from tests import dynamodb_limits
from tests.dynamodb_limits import LimitExceeded

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE = "limits"


@pytest.fixture(scope="module")
def client() -> Any:
    return botocore.session.get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )


def s(text: str) -> dict[str, str]:
    return {"S": text}


def key(pk: str = "p", sk: str = "s") -> dict[str, Any]:
    return {"pk": s(pk), "sk": s(sk)}


def order_index_start(gsi1pk: str = "MERCHANT#m#ORDERS", gsi1sk: str = "1700000000000#o-1") -> dict[str, Any]:
    return {"pk": s("ORDER#m#o-1"), "sk": s("ORDER"), "gsi1pk": s(gsi1pk), "gsi1sk": s(gsi1sk)}


def index_query(**extra: Any) -> dict[str, Any]:
    return {
        "TableName": TABLE,
        "IndexName": "gsi1",
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :a AND :b",
        "ExpressionAttributeNames": {"#pk": "gsi1pk", "#sk": "gsi1sk"},
        "ExpressionAttributeValues": {":pk": s("MERCHANT#m#ORDERS"), ":a": s("0"), ":b": s("9~")},
        **extra,
    }


REFUSED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "a partition key over 2048 bytes": (
        "partition key pk is 2100 bytes",
        lambda c: c.get_item(TableName=TABLE, Key=key(pk="x" * 2100)),
    ),
    "a sort key over 1024 bytes (UTF-8)": (
        "sort key sk is 1030 bytes",
        lambda c: c.delete_item(TableName=TABLE, Key=key(sk="\u00e9" * 515)),
    ),
    "an empty index key": (
        "gsi1sk cannot be empty",
        lambda c: c.put_item(TableName=TABLE, Item={**key(), "gsi1pk": s("i"), "gsi1sk": s("")}),
    ),
    "an index key of the wrong type": (
        "gsi1sk must be of type S",
        lambda c: c.put_item(TableName=TABLE, Item={**key(), "gsi1pk": s("i"), "gsi1sk": {"N": "1"}}),
    ),
    "an item over 400 KB": (
        "over the limit of 409600",
        lambda c: c.put_item(TableName=TABLE, Item={**key(), "blob": s("z" * 410_000)}),
    ),
    "a number of 39 digits": ("38 digits", lambda c: c.put_item(TableName=TABLE, Item={**key(), "n": {"N": "1" * 39}})),
    "an expression over 4 KB": (
        "ConditionExpression is",
        lambda c: c.put_item(
            TableName=TABLE, Item=key(), ConditionExpression=" OR ".join(["attribute_not_exists(pk)"] * 200)
        ),
    ),
    "an unused expression value": (
        "ExpressionAttributeValues unused",
        lambda c: c.put_item(
            TableName=TABLE,
            Item=key(),
            ConditionExpression="attribute_not_exists(pk)",
            ExpressionAttributeValues={":x": s("1")},
        ),
    ),
    "a query value over the partition key limit": (
        "partition key gsi1pk is 2100 bytes",
        lambda c: c.query(**index_query(ExpressionAttributeValues={":pk": s("x" * 2100), ":a": s("0"), ":b": s("9~")})),
    ),
    "a starting key of another partition": (
        "outside query boundaries",
        lambda c: c.query(**index_query(ExclusiveStartKey=order_index_start(gsi1pk="MERCHANT#other#ORDERS"))),
    ),
    "a starting key outside the sort key range": (
        "outside query boundaries",
        lambda c: c.query(**index_query(ExclusiveStartKey=order_index_start(gsi1sk="~"))),
    ),
    "a starting key without the index's keys": (
        "must hold exactly",
        lambda c: c.query(**index_query(ExclusiveStartKey=key())),
    ),
    "a starting key with a 2,100-byte table key": (
        "partition key pk is 2100 bytes",
        lambda c: c.query(**index_query(ExclusiveStartKey={**order_index_start(), "pk": s("y" * 2100)})),
    ),
    "101 transaction items": (
        "at most 100 items",
        lambda c: c.transact_write_items(
            TransactItems=[{"Put": {"TableName": TABLE, "Item": key(pk=f"p{i}")}} for i in range(101)]
        ),
    ),
    "two actions on one item in a transaction": (
        "multiple operations on one item",
        lambda c: c.transact_write_items(
            TransactItems=[{"Put": {"TableName": TABLE, "Item": key()}}, {"Delete": {"TableName": TABLE, "Key": key()}}]
        ),
    ),
    "26 writes in a batch": (
        "at most 25 requests",
        lambda c: c.batch_write_item(
            RequestItems={TABLE: [{"PutRequest": {"Item": key(pk=f"p{i}")}} for i in range(26)]}
        ),
    ),
    "one key twice in a batch": (
        "contains duplicates",
        lambda c: c.batch_get_item(RequestItems={TABLE: {"Keys": [key(), key()]}}),
    ),
    "an update of a table key": (
        "part of the key",
        lambda c: c.update_item(
            TableName=TABLE,
            Key=key(),
            UpdateExpression="SET #k = :v",
            ExpressionAttributeNames={"#k": "sk"},
            ExpressionAttributeValues={":v": s("t")},
        ),
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_the_checker_refuses_what_dynamodb_refuses(client: Any, case: str) -> None:
    # Given a request DynamoDB refuses for one of its documented limits
    fragment, call = REFUSED[case]
    # When a DynamoDB client of the test run makes it
    with dynamodb_limits.expected_violations() as found, pytest.raises(LimitExceeded) as refused:
        call(client)
    # Then it is refused as DynamoDB would refuse it, naming the limit, and recorded
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert fragment in refused.value.response["Error"]["Message"]
    assert len(found) == 1 and fragment in found[0]


def test_requests_within_the_limits_go_through(client: Any) -> None:
    # Given requests at the limits: keys of 2048 and 1024 bytes, a starting key inside the range
    calls: list[Callable[[], object]] = [
        lambda: client.get_item(TableName=TABLE, Key=key(pk="x" * 2048, sk="y" * 1024)),
        lambda: client.query(**index_query(ExclusiveStartKey=order_index_start())),
        lambda: client.put_item(TableName=TABLE, Item={**key(), "n": {"N": "9" * 38}}),
    ]
    for call in calls:
        # When each is made
        # Then the checker lets it through: it fails only to connect (nothing listens there)
        with dynamodb_limits.expected_violations() as found, pytest.raises(botocore.exceptions.EndpointConnectionError):
            call()
        assert found == []


def test_the_checker_is_on_every_dynamodb_client_of_the_run() -> None:
    # Given a client made the way the gateway makes its own (usdt_gateway.aws)
    from usdt_gateway import aws

    gateway_client = cast(
        "DynamoDBClient",
        aws._session().create_client("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"),
    )
    # When it asks for an item under a 2,100-byte key
    # Then it is refused before any connection is tried
    with dynamodb_limits.expected_violations() as found, pytest.raises(LimitExceeded):
        gateway_client.get_item(TableName=TABLE, Key=key(pk="x" * 2100))
    assert len(found) == 1
