"""verify_webhook, cross-checked with the reference Standard Webhooks library in both directions."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError
from usdt_gateway_client import WebhookVerificationError, verify_webhook

from usdt_gateway.webhooks.signing import new_secret, webhook_headers

SDK = Path(__file__).resolve().parent.parent
EVENT = {
    "id": "evt_1",
    "type": "order.confirmed",
    "sequence": 2,
    "data": {"orderId": "order-1", "status": "confirmed", "paidAmount": "50.00"},
}
BODY = json.dumps(EVENT).encode()


def reference_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers signed by the reference library."""
    signed = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signed}


def test_the_published_test_vector_verifies() -> None:
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    event = verify_webhook(headers, b'{"test": 2432232314}', "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now=1614265330)
    assert event == {"test": 2432232314}


def test_verifies_what_the_reference_library_signs() -> None:
    secret, now = new_secret(), int(time.time())
    assert verify_webhook(reference_headers(secret, "evt_1", now, BODY), BODY, secret) == EVENT


def test_agrees_with_the_reference_library_on_what_the_gateway_sends() -> None:
    current, old, now = new_secret(), new_secret(), int(time.time())
    headers = webhook_headers([current, old], "evt_1", now, BODY)
    for secret in (current, old):
        assert verify_webhook(headers, BODY, secret) == Webhook(secret).verify(BODY, headers) == EVENT
    stranger = new_secret()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, BODY, stranger)
    with pytest.raises(ReferenceError):
        Webhook(stranger).verify(BODY, headers)


@pytest.mark.parametrize("change", ["none", "body", "id", "timestamp", "signature", "secret", "old", "future"])
def test_accepts_and_rejects_exactly_what_the_reference_library_does(change: str) -> None:
    secret, now = new_secret(), int(time.time())
    ts = {"old": now - 400, "future": now + 400}.get(change, now)
    headers = reference_headers(secret, "evt_1", ts, BODY)
    body = BODY
    if change == "body":
        body = BODY.replace(b'"50.00"', b'"5000.00"')
    elif change == "id":
        headers["webhook-id"] = "evt_2"
    elif change == "timestamp":
        headers["webhook-timestamp"] = str(now + 1)
    elif change == "signature":
        raw = bytearray(base64.b64decode(headers["webhook-signature"][3:]))
        raw[0] ^= 1
        headers["webhook-signature"] = "v1," + base64.b64encode(bytes(raw)).decode()
    elif change == "secret":
        secret = new_secret()

    def ours() -> bool:
        try:
            verify_webhook(headers, body, secret)
        except WebhookVerificationError:
            return False
        return True

    def reference() -> bool:
        try:
            Webhook(secret).verify(body, headers)
        except ReferenceError:
            return False
        return True

    assert ours() == reference() == (change == "none")


def test_receiver_side_rotation_accepts_any_of_its_secrets() -> None:
    old, new, now = new_secret(), new_secret(), int(time.time())
    headers = reference_headers(old, "evt_1", now, BODY)
    assert verify_webhook(headers, BODY, [new, old]) == EVENT
    assert verify_webhook(headers, BODY, (old,)) == EVENT
    with pytest.raises(WebhookVerificationError, match="no valid signature"):
        verify_webhook(headers, BODY, [new])


def test_the_timestamp_must_be_within_tolerance_either_way() -> None:
    secret, ts = new_secret(), 1_764_600_000
    headers = reference_headers(secret, "evt_1", ts, BODY)
    assert verify_webhook(headers, BODY, secret, now=ts + 300) == EVENT
    assert verify_webhook(headers, BODY, secret, now=ts - 300) == EVENT
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(headers, BODY, secret, now=ts + 301)
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_webhook(headers, BODY, secret, now=ts - 301)
    assert verify_webhook(headers, BODY, secret, tolerance_s=10, now=ts + 10) == EVENT
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(headers, BODY, secret, tolerance_s=10, now=ts + 11)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(headers, BODY, secret)  # now: the real clock, long after ts


def test_tampering_is_detected() -> None:
    secret, ts = new_secret(), 1_764_600_000
    headers = reference_headers(secret, "evt_1", ts, BODY)
    for body, changed in [
        (BODY + b" ", headers),
        (BODY, {**headers, "webhook-id": "evt_9"}),
        (BODY, {**headers, "webhook-timestamp": str(ts + 1)}),
    ]:
        with pytest.raises(WebhookVerificationError, match="no valid signature"):
            verify_webhook(changed, body, secret, now=ts)


def test_header_names_are_case_insensitive_and_the_body_may_be_text() -> None:
    secret, ts = new_secret(), 1_764_600_000
    headers = reference_headers(secret, "evt_1", ts, BODY)
    mixed = {
        "Webhook-Id": headers["webhook-id"],
        "WEBHOOK-TIMESTAMP": headers["webhook-timestamp"],
        "wEbHoOk-SiGnAtUrE": headers["webhook-signature"],
        "Content-Type": "application/json",
    }
    assert verify_webhook(mixed, BODY, secret, now=ts) == EVENT
    assert verify_webhook(mixed, BODY.decode(), secret, now=ts) == EVENT


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_rejected(missing: str) -> None:
    secret, ts = new_secret(), 1_764_600_000
    headers = reference_headers(secret, "evt_1", ts, BODY)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook({k: v for k, v in headers.items() if k != missing}, BODY, secret, now=ts)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook({**headers, missing: ""}, BODY, secret, now=ts)


@pytest.mark.parametrize("value", ["1764600000.0", "abc", "-1764600000", "+1764600000", "1" * 5000])
def test_a_timestamp_that_is_not_integer_seconds_is_rejected(value: str) -> None:
    secret = new_secret()
    headers = {**reference_headers(secret, "evt_1", 1_764_600_000, BODY), "webhook-timestamp": value}
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify_webhook(headers, BODY, secret, now=1_764_600_000)


def test_only_v1_signatures_count_and_any_one_valid_of_several_is_enough() -> None:
    secret, ts = new_secret(), 1_764_600_000
    headers = reference_headers(secret, "evt_1", ts, BODY)
    valid = headers["webhook-signature"]
    encoded = valid.removeprefix("v1,")
    for header in [f"v2,{encoded}", f"v1a,{encoded}", f"V1,{encoded}", encoded, f"v1,{encoded[:-4]}"]:
        with pytest.raises(WebhookVerificationError, match="no valid signature"):
            verify_webhook({**headers, "webhook-signature": header}, BODY, secret, now=ts)
    noisy = f"v1,bm9wZQ== v2,{encoded} garbage v1,***  {valid} v1,Zm9v"
    assert verify_webhook({**headers, "webhook-signature": noisy}, BODY, secret, now=ts) == EVENT


def test_a_verified_body_that_is_not_a_json_object_is_rejected() -> None:
    secret, ts = new_secret(), 1_764_600_000
    for body in (b"[1, 2]", b"not json"):
        with pytest.raises(WebhookVerificationError, match="JSON"):
            verify_webhook(reference_headers(secret, "evt_1", ts, body), body, secret, now=ts)


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not*base64", "whsec_", []])
def test_a_malformed_secret_is_a_configuration_error(secret: str | list[str]) -> None:
    headers = reference_headers(new_secret(), "evt_1", 1_764_600_000, BODY)
    with pytest.raises(ValueError) as caught:
        verify_webhook(headers, BODY, secret, now=1_764_600_000)
    assert not isinstance(caught.value, WebhookVerificationError)


def test_the_package_is_standard_library_only() -> None:
    project = tomllib.loads((SDK / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "usdt-gateway-client"
    assert project["dependencies"] == []
    assert project["requires-python"] == ">=3.10"
    # -S -I: no site-packages at all, only the standard library and the SDK itself.
    script = f"import sys; sys.path.insert(0, {str(SDK)!r}); import usdt_gateway_client; print('ok')"
    # this interpreter, fixed arguments
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-S", "-I", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
