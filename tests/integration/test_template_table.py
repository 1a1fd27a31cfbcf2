"""The table created from template.yaml behaves like the code expects, on a moto server over HTTP."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.template import create_table, load_template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def dynamodb(moto_server: str) -> DynamoDBClient:
    return boto3.client("dynamodb", endpoint_url=moto_server, region_name="us-east-1")


@pytest.fixture
def table(dynamodb: DynamoDBClient) -> str:
    name = f"gateway-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb, name)
    return name


def test_table_has_the_template_schema(dynamodb: DynamoDBClient, table: str) -> None:
    # Given a table created from the template

    # When it is described
    description = dynamodb.describe_table(TableName=table)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]

    # Then it has the keys, the index, on-demand billing and TTL on `ttl`
    assert {k["AttributeName"]: k["KeyType"] for k in description["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert [i["IndexName"] for i in description.get("GlobalSecondaryIndexes", [])] == ["gsi1"]
    assert description.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST"
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}


def test_conditional_put_refuses_a_second_order_with_the_same_key(dynamodb: DynamoDBClient, table: str) -> None:
    # Given an order written with attribute_not_exists(pk)
    item = {"pk": {"S": "ORDER#m1#o1"}, "sk": {"S": "ORDER"}, "status": {"S": "pending"}}
    dynamodb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")

    # When the same order is written again under the same condition
    with pytest.raises(ClientError) as caught:
        dynamodb.put_item(
            TableName=table,
            Item={**item, "status": {"S": "cancelled"}},
            ConditionExpression="attribute_not_exists(pk)",
        )

    # Then the write is refused and the first order is unchanged
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    stored = dynamodb.get_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})["Item"]
    assert stored["status"] == {"S": "pending"}


def test_gsi1_lists_a_merchants_orders_between_two_times(dynamodb: DynamoDBClient, table: str) -> None:
    # Given three orders of merchant m1 and one of merchant m2, indexed by creation time
    created = {"o1": 1_700_000_000_000, "o2": 1_700_000_060_000, "o3": 1_700_000_120_000}
    for order_id, at in created.items():
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"ORDER#m1#{order_id}"},
                "sk": {"S": "ORDER"},
                "gsi1pk": {"S": "MERCHANT#m1#ORDERS"},
                "gsi1sk": {"S": f"{at:013d}#{order_id}"},
            },
        )
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": "ORDER#m2#o9"},
            "sk": {"S": "ORDER"},
            "gsi1pk": {"S": "MERCHANT#m2#ORDERS"},
            "gsi1sk": {"S": f"{1_700_000_060_000:013d}#o9"},
        },
    )

    # When m1's orders from the first two minutes are queried, newest first
    resp = dynamodb.query(
        TableName=table,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :pk AND gsi1sk BETWEEN :start AND :end",
        ExpressionAttributeValues={
            ":pk": {"S": "MERCHANT#m1#ORDERS"},
            ":start": {"S": f"{1_700_000_000_000:013d}"},
            ":end": {"S": f"{1_700_000_060_000:013d}~"},
        },
        ScanIndexForward=False,
    )

    # Then exactly m1's first two orders come back, newest first
    assert [i["pk"]["S"] for i in resp["Items"]] == ["ORDER#m1#o2", "ORDER#m1#o1"]


def test_queues_are_created_from_the_template_with_their_dead_letter_queue(moto_server: str) -> None:
    # Given a template declaring a queue that redrives to a dead-letter queue after 3 receives
    from devstack.template import create_queues

    template = load_template(_write_template(QUEUE_TEMPLATE))
    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    # When the queues are created
    queues = create_queues(sqs, template, f"t{uuid.uuid4().hex[:6]}")
    # Then both exist with the declared attributes, and the redrive points at the DLQ's ARN
    attrs = sqs.get_queue_attributes(QueueUrl=queues["Deliveries"].url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "90"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": queues["DeliveriesDLQ"].arn,
        "maxReceiveCount": 3,
    }
    dlq = sqs.get_queue_attributes(QueueUrl=queues["DeliveriesDLQ"].url, AttributeNames=["All"])["Attributes"]
    assert dlq["MessageRetentionPeriod"] == "1209600"


QUEUE_TEMPLATE = """
Resources:
  Deliveries:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 90
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DeliveriesDLQ.Arn
        maxReceiveCount: 3
  DeliveriesDLQ:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
"""


def _write_template(text: str) -> Path:
    path = Path(tempfile.mkdtemp()) / "template.yaml"
    path.write_text(text)
    return path
