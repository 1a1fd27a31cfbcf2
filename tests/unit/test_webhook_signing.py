"""Our webhook signatures, checked by the independent reference verifier (`standardwebhooks`)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from usdt_gateway import merchants
from usdt_gateway.webhooks.signing import new_secret, secret_key, signature, webhook_headers

BODY = json.dumps(
    {
        "id": "evt_1",
        "type": "order.confirmed",
        "sequence": 2,
        "data": {"orderId": "order-1", "status": "confirmed", "note": "caf\u00e9"},
    }
).encode()

# The published test vector of the Standard Webhooks reference libraries
# (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py: test_sign_function).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_reproduces_the_published_test_vector() -> None:
    assert signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_headers_verify_with_the_reference_library() -> None:
    secret, now = new_secret(), int(time.time())
    headers = webhook_headers([secret], "evt_1", now, BODY)
    assert headers == {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature(secret, "evt_1", now, BODY),
        "content-type": "application/json",
    }
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_rotation_signs_with_both_secrets_current_first_and_each_alone_verifies() -> None:
    current, old, now = new_secret(), new_secret(), int(time.time())
    headers = webhook_headers([current, old], "evt_2", now, BODY)
    entries = headers["webhook-signature"].split(" ")
    assert entries == [signature(current, "evt_2", now, BODY), signature(old, "evt_2", now, BODY)]
    assert entries[0] != entries[1]
    for secret in (current, old):
        assert Webhook(secret).verify(BODY, headers)["type"] == "order.confirmed"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_a_repeated_secret_signs_once() -> None:
    secret = new_secret()
    assert len(webhook_headers([secret, secret], "evt_3", 1, BODY)["webhook-signature"].split(" ")) == 1


@pytest.mark.parametrize("field", ["body", "webhook-id", "webhook-timestamp"])
def test_tampering_fails_verification(field: str) -> None:
    secret, now = new_secret(), int(time.time())
    headers = webhook_headers([secret], "evt_4", now, BODY)
    body = BODY
    if field == "body":
        body = BODY.replace(b'"sequence": 2', b'"sequence": 3')
        assert body != BODY
    elif field == "webhook-id":
        headers["webhook-id"] = "evt_5"
    else:
        headers["webhook-timestamp"] = str(now - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_a_wrong_secret_fails_verification() -> None:
    now = int(time.time())
    headers = webhook_headers([new_secret()], "evt_6", now, BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(new_secret()).verify(BODY, headers)


def test_new_secrets_are_32_random_bytes_in_the_whsec_format() -> None:
    made = {new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[6:], validate=True)) == 32
        assert secret_key(secret) == base64.b64decode(secret[6:])


def test_unpadded_base64_is_the_same_key() -> None:
    secret = new_secret()
    assert secret.endswith("=")
    assert secret_key(secret.rstrip("=")) == secret_key(secret)


def test_secrets_issued_by_create_merchant_sign_and_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    stored: list[dict[str, Any]] = []

    def put_new(item: dict[str, Any]) -> bool:
        stored.append(item)
        return True

    monkeypatch.setattr("usdt_gateway.merchants.store.put_new", put_new)
    monkeypatch.setattr(merchants, "encrypt", lambda plaintext, context: "cipher")
    secret = merchants.create_merchant("shop")["webhookSecret"]
    assert stored and len(secret_key(secret)) == 24
    now = int(time.time())
    assert Webhook(secret).verify(BODY, webhook_headers([secret], "evt_7", now, BODY))["id"] == "evt_1"


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("sk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("whsec_MfKQ9r8GKYqrTwjU*D8ILPZIo2LaLaSw", "not valid base64"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwX", "not valid base64"),
        ("whsec_", "no key"),
    ],
)
def test_a_malformed_secret_is_refused_without_quoting_it(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        signature(secret, "evt_8", 1, BODY)
    key_part = secret.removeprefix("whsec_")
    assert not key_part or key_part[:8] not in str(caught.value)
    with pytest.raises(ValueError, match=problem):
        webhook_headers([new_secret(), secret], "evt_8", 1, BODY)


@pytest.mark.parametrize(("msg_id", "timestamp"), [("", 1), ("evt 1", 1), ("evt\r\nx: y", 1), ("evt", -1)])
def test_ids_and_timestamps_unfit_for_a_header_are_refused(msg_id: str, timestamp: int) -> None:
    with pytest.raises(ValueError, match=r"webhook (id|timestamp)"):
        signature(new_secret(), msg_id, timestamp, BODY)


def test_headers_need_a_list_of_at_least_one_secret() -> None:
    with pytest.raises(ValueError, match="no webhook secret"):
        webhook_headers([], "evt_9", 1, BODY)
    with pytest.raises(TypeError):
        webhook_headers(new_secret(), "evt_9", 1, BODY)
