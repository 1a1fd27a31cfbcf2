"""Point a benchmark process at its own moto server: fake credentials, the endpoint, the table
built from template.yaml and a KMS key."""

from __future__ import annotations

import os

import boto3

from devstack.template import create_table

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


def point_at_moto(endpoint: str, table: str) -> None:
    """Sets AWS_ENDPOINT_URL, TABLE_NAME and KMS_KEY_ID (a new key) for the gateway's code."""
    for name, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    create_table(boto3.client("dynamodb"), table)
    os.environ["TABLE_NAME"] = table
    os.environ["KMS_KEY_ID"] = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
