"""Merchant secrets (API secret keys, webhook secrets) are stored KMS-encrypted, bound by an
encryption context to the item they belong to, so a ciphertext copied onto another item fails
to decrypt. Decrypted values are cached per ciphertext: a key's secret never changes (rotation
creates a new key), so the cache cannot serve a stale secret."""

from __future__ import annotations

import base64
from functools import lru_cache
from typing import TYPE_CHECKING

from usdt_gateway import aws
from usdt_gateway.config import settings

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient


def _kms() -> KMSClient:
    return aws.client("kms")  # type: ignore[no-any-return]  # botocore builds clients untyped


def encrypt(plaintext: str, context: dict[str, str]) -> str:
    resp = _kms().encrypt(KeyId=settings().kms_key_id, Plaintext=plaintext.encode(), EncryptionContext=context)
    return base64.b64encode(resp["CiphertextBlob"]).decode()


@lru_cache(maxsize=4096)
def _decrypt(ciphertext: str, context: tuple[tuple[str, str], ...]) -> str:
    resp = _kms().decrypt(CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext=dict(context))
    return resp["Plaintext"].decode()


def decrypt(ciphertext: str, context: dict[str, str]) -> str:
    return _decrypt(ciphertext, tuple(sorted(context.items())))
