"""moto's KMS answering `Sign` and `Verify` with `MessageType=DIGEST` as AWS documents.

moto 5.2.5 ignores MessageType: a DIGEST is hashed again like a RAW message, so an ECDSA
signature comes out over sha256(digest) and recovers to no key on chain (upstream fix open:
getmoto/moto#10202). AWS signs a DIGEST as given, which is what EVM and Tron transactions need
(their keccak256 or sha256 is signed directly). This patch marks a request as DIGEST while moto
handles it, and moto's ECDSA key then signs or verifies the digest prehashed. RAW requests and
RSA keys keep moto's behaviour. tests/integration/test_kms_signer.py pins the moto behaviour it
works around: it fails once moto handles DIGEST itself, and then this module should go.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, utils
from moto.kms.exceptions import ValidationException
from moto.kms.responses import KmsResponse
from moto.kms.utils import ECDSAPrivateKey

_DIGEST = contextvars.ContextVar("kms_message_is_digest", default=False)

# moto's own handlers, kept for the patch and for the test that pins the bug.
MOTO_SIGN_RESPONSE = KmsResponse.sign
MOTO_VERIFY_RESPONSE = KmsResponse.verify
MOTO_ECDSA_SIGN = ECDSAPrivateKey.sign
MOTO_ECDSA_VERIFY = ECDSAPrivateKey.verify


def _marking_digest(handler: Callable[[KmsResponse], str]) -> Callable[[KmsResponse], str]:
    def handle(self: KmsResponse) -> str:
        token = _DIGEST.set(self._get_param("MessageType") == "DIGEST")
        try:
            return handler(self)
        finally:
            _DIGEST.reset(token)

    return handle


def _prehashed(key: ECDSAPrivateKey, digest: bytes, signing_algorithm: str) -> ec.ECDSA:
    if signing_algorithm not in key.valid_signing_algorithms:
        raise ValidationException(f"Signing algorithm {signing_algorithm} is not valid for this key")
    algorithm = key._ECDSAPrivateKey__hash_algorithm(signing_algorithm)  # type: ignore[attr-defined]
    if len(digest) != algorithm.digest_size:  # AWS's own check on a DIGEST
        raise ValidationException(f"Digest is invalid length for algorithm {signing_algorithm}.")
    return ec.ECDSA(utils.Prehashed(algorithm))


def _sign(self: ECDSAPrivateKey, message: bytes, signing_algorithm: str) -> bytes:
    if not _DIGEST.get():
        return MOTO_ECDSA_SIGN(self, message, signing_algorithm)
    signature: bytes = self.private_key.sign(message, _prehashed(self, message, signing_algorithm))
    return signature


def _verify(self: ECDSAPrivateKey, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
    if not _DIGEST.get():
        return MOTO_ECDSA_VERIFY(self, message, signature, signing_algorithm)
    try:
        self.private_key.public_key().verify(signature, message, _prehashed(self, message, signing_algorithm))
    except InvalidSignature:
        return False
    return True


def install() -> None:
    """Patch moto's KMS in this process (idempotent)."""
    KmsResponse.sign = _marking_digest(MOTO_SIGN_RESPONSE)  # type: ignore[method-assign,assignment]
    KmsResponse.verify = _marking_digest(MOTO_VERIFY_RESPONSE)  # type: ignore[method-assign,assignment]
    ECDSAPrivateKey.sign = _sign  # type: ignore[method-assign]
    ECDSAPrivateKey.verify = _verify  # type: ignore[method-assign]
