"""The webhook API through the Lambda handler: the delivery log and its filters, resend, the test
endpoint, the endpoint settings, and the SSRF guard on every URL a merchant configures."""

from __future__ import annotations

import socket
from typing import Any

import boto3
import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.apiclient import ApiClient
from tests.integration.conftest import PUBLIC_IP, FakeDns, Merchant, WebhookQueues, new_merchant, table_item_count
from tests.integration.webhook_receiver import Reply, receiver
from tests.integration.webhooks import DELIVERIES, ENDPOINT, cancelled_order, event, order_events, queue_bodies, set_url
from usdt_gateway import config

TEST_PATH = "/v1/webhooks/test"


@pytest.fixture
def stranger(handler: object, gateway_env: dict[str, str]) -> ApiClient:
    other = new_merchant()
    return ApiClient(handler, other.api_key, other.secret)


def deliveries(api: ApiClient, *query: tuple[str, str]) -> list[dict[str, Any]]:
    reply = api.request("GET", DELIVERIES, query=list(query))
    assert reply.status == 200, reply.body
    return list(reply.body["deliveries"])


# --- the delivery log ------------------------------------------------------------------------


@pytest.mark.usefixtures("webhook_queues")  # the events are handed over: no outbox marker is left behind
def test_the_delivery_log_lists_newest_first_with_filters_and_pages(api: ApiClient, stranger: ApiClient) -> None:
    # Given three cancelled orders and an order with two events
    cancelled = [cancelled_order(api) for _ in range(3)]
    paid_order, (confirming, confirmed) = order_events(api, ["order.confirming", "order.confirmed"])
    # When the log is read
    every = deliveries(api)
    # Then it has one entry per event, newest first, none attempted yet
    assert [d["deliveryId"] for d in every] == [confirmed, confirming, *[e for _, e in reversed(cancelled)]]
    assert {(d["status"], d["nextAttemptAt"], tuple(d["attempts"])) for d in every} == {("pending", None, ())}
    assert every[0]["type"] == "order.confirmed" and every[0]["orderId"] == paid_order
    # And the filters narrow it
    assert [d["deliveryId"] for d in deliveries(api, ("orderId", paid_order))] == [confirmed, confirming]
    assert [d["deliveryId"] for d in deliveries(api, ("type", "order.confirmed"))] == [confirmed]
    assert len(deliveries(api, ("type", "order.cancelled"), ("outcome", "pending"))) == 3
    assert deliveries(api, ("outcome", "delivered")) == []
    # And pages of two cover it without overlap
    seen, cursor = [], None
    while True:
        query = [("limit", "2")] + ([("cursor", cursor)] if cursor else [])
        page = api.request("GET", DELIVERIES, query=query).body
        seen += [d["deliveryId"] for d in page["deliveries"]]
        if not (cursor := page["nextCursor"]):
            break
    assert seen == [d["deliveryId"] for d in every]
    # And another merchant sees none of it
    assert deliveries(stranger) == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (("outcome", "lost"), "INVALID_PARAMETER"),
        (("type", "order.paid"), "INVALID_PARAMETER"),
        (("orderId", "has spaces"), "INVALID_PARAMETER"),
        (("limit", "0"), "INVALID_PARAMETER"),
        (("limit", "101"), "INVALID_PARAMETER"),
        (("cursor", "not-a-cursor"), "INVALID_CURSOR"),
        (("status", "dead"), "UNKNOWN_PARAMETER"),
    ],
)
def test_invalid_log_filters_are_refused(api: ApiClient, query: tuple[str, str], code: str) -> None:
    reply = api.request("GET", DELIVERIES, query=[query])
    assert (reply.status, reply.body["code"]) == (400, code)


# --- resend ---------------------------------------------------------------------------------


def test_resend_queues_the_same_event_again(api: ApiClient, stranger: ApiClient, webhook_queues: WebhookQueues) -> None:
    # Given an event handed to the queue, and taken off it
    set_url(api, "https://shop.example.com/hook")
    _, event_id = cancelled_order(api)
    assert queue_bodies(webhook_queues.queue) == [{"eventId": event_id}]
    sqs = boto3.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=webhook_queues.queue).get("Messages", [])
    sqs.delete_message(QueueUrl=webhook_queues.queue, ReceiptHandle=message["ReceiptHandle"])
    body = event(event_id)["body"]
    # When the merchant resends it
    reply = api.request("POST", f"{DELIVERIES}/{event_id}/resend")
    # Then it is pending, due now, back in the queue, its body unchanged
    assert reply.status == 202
    assert (reply.body["deliveryId"], reply.body["status"]) == (event_id, "pending")
    assert reply.body["nextAttemptAt"] is not None
    assert queue_bodies(webhook_queues.queue) == [{"eventId": event_id}]
    assert event(event_id)["body"] == body
    # And another merchant, or an unknown id, gets a 404
    for client, delivery in ((stranger, event_id), (api, "evt_unknown")):
        missing = client.request("POST", f"{DELIVERIES}/{delivery}/resend")
        assert (missing.status, missing.body["code"]) == (404, "DELIVERY_NOT_FOUND")


@pytest.mark.usefixtures("webhook_queues")
def test_resend_without_a_url_is_refused(api: ApiClient) -> None:
    _, event_id = cancelled_order(api)
    reply = api.request("POST", f"{DELIVERIES}/{event_id}/resend")
    assert (reply.status, reply.body["code"]) == (400, "WEBHOOK_URL_REQUIRED")


# --- the test endpoint ----------------------------------------------------------------------


@pytest.mark.usefixtures("webhook_queues")
def test_the_test_endpoint_sends_a_signed_test_event_now(api: ApiClient, merchant: Merchant) -> None:
    with receiver() as shop:
        # Given the merchant's default URL
        set_url(api, shop.url())
        # When it asks for a test event (no body)
        reply = api.request("POST", TEST_PATH)
        # Then its receiver got a signed webhook.test, and the answer says so
        assert reply.status == 200, reply.body
        (hit,) = shop.hits
        sent = Webhook(merchant.webhook_secret).verify(hit.body, hit.headers)
        assert (sent["type"], sent["sequence"], sent["id"]) == ("webhook.test", 0, reply.body["deliveryId"])
        assert set(sent) == {"id", "type", "createdAt", "sequence", "data"} and sent["data"]["message"]
        assert reply.body | {"latencyMs": 0} == {
            "deliveryId": hit.webhook_id,
            "url": shop.url(),
            "ok": True,
            "statusCode": 200,
            "latencyMs": 0,
            "error": None,
        }
        # And it is in the delivery log like any event
        (logged,) = deliveries(api, ("type", "webhook.test"))
        assert (logged["deliveryId"], logged["status"], logged["orderId"]) == (hit.webhook_id, "delivered", None)
        assert [a["statusCode"] for a in logged["attempts"]] == [200]


@pytest.mark.usefixtures("webhook_queues")
def test_the_test_endpoint_reports_a_failing_url(api: ApiClient) -> None:
    with receiver() as shop:
        shop.default = Reply(500)
        set_url(api, shop.url())
        # When the default URL answers 500, and another URL given in the body refuses connections
        failing = api.request("POST", TEST_PATH).body
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
        refused = api.request("POST", TEST_PATH, {"url": closed}).body
    # Then each answer says what happened, and the log has both, dead (a test is attempted once)
    assert (failing["ok"], failing["statusCode"], failing["error"]) == (False, 500, "HTTP 500")
    assert (refused["ok"], refused["statusCode"], refused["error"], refused["url"]) == (
        False,
        None,
        "connection refused",
        closed,
    )
    assert [d["status"] for d in deliveries(api, ("type", "webhook.test"))] == ["dead", "dead"]


def test_the_test_endpoint_needs_a_url(api: ApiClient) -> None:
    reply = api.request("POST", TEST_PATH, {})
    assert (reply.status, reply.body["code"]) == (400, "WEBHOOK_URL_REQUIRED")


# --- the endpoint settings ------------------------------------------------------------------


@pytest.mark.usefixtures("dns")
def test_the_endpoint_is_set_disabled_re_enabled_and_removed(api: ApiClient) -> None:
    # Given a new merchant: nothing configured
    assert api.request("GET", ENDPOINT).body == {
        "url": None,
        "enabled": False,
        "disabledUrls": [],
        "secretRotation": None,
    }
    # When it sets a URL, then disables it
    url = "https://shop.example.com/hook"
    assert set_url(api, url) | {"disabledUrls": []} == {
        "url": url,
        "enabled": True,
        "disabledUrls": [],
        "secretRotation": None,
    }
    off = api.request("PUT", ENDPOINT, {"enabled": False}).body
    assert off["enabled"] is False
    assert [(d["url"], d["reason"]) for d in off["disabledUrls"]] == [
        (url, "disabled through PUT /v1/webhooks/endpoint")
    ]
    # And re-enables it, and re-enables another URL it never disabled (harmless)
    on = api.request("PUT", ENDPOINT, {"enabled": True, "enableUrls": ["https://other.example.com/x"]}).body
    assert (on["enabled"], on["disabledUrls"]) == (True, [])
    # And removes it
    assert api.request("PUT", ENDPOINT, {"url": None}).body["url"] is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "VALIDATION_ERROR"),
        ({"enabled": True}, "WEBHOOK_URL_REQUIRED"),
        ({"enabled": "yes"}, "VALIDATION_ERROR"),
        ({"url": "https://shop.example.com/hook", "colour": "red"}, "VALIDATION_ERROR"),
    ],
)
@pytest.mark.usefixtures("dns")
def test_invalid_endpoint_settings_are_refused(api: ApiClient, payload: dict[str, Any], code: str) -> None:
    before = table_item_count()
    reply = api.request("PUT", ENDPOINT, payload)
    assert (reply.status, reply.body["code"]) == (400, code)
    assert table_item_count() == before


# --- SSRF refusals at configuration ---------------------------------------------------------

UNSAFE = [
    pytest.param("https://127.0.0.1/hook", "URL_NOT_PUBLIC", "loopback", id="loopback"),
    pytest.param("https://10.1.2.3/hook", "URL_NOT_PUBLIC", "private", id="private-10"),
    pytest.param("https://172.16.5.4/hook", "URL_NOT_PUBLIC", "private", id="private-172"),
    pytest.param("https://192.168.1.1/hook", "URL_NOT_PUBLIC", "private", id="private-192"),
    pytest.param("https://169.254.169.254/latest/meta-data", "URL_NOT_PUBLIC", "metadata", id="metadata"),
    pytest.param("https://169.254.10.1/hook", "URL_NOT_PUBLIC", "link-local", id="link-local"),
    pytest.param("https://100.64.0.9/hook", "URL_NOT_PUBLIC", "CGNAT", id="cgnat"),
    pytest.param("https://224.0.0.1/hook", "URL_NOT_PUBLIC", "multicast", id="multicast"),
    pytest.param("https://0.0.0.0/hook", "URL_NOT_PUBLIC", "unspecified", id="unspecified"),
    pytest.param("https://[::1]/hook", "URL_NOT_PUBLIC", "loopback", id="v6-loopback"),
    pytest.param("https://[fd00::1]/hook", "URL_NOT_PUBLIC", "unique local", id="v6-ula"),
    pytest.param("https://[fe80::1]/hook", "URL_NOT_PUBLIC", "link-local", id="v6-link-local"),
    pytest.param("https://[::ffff:10.0.0.1]/hook", "URL_NOT_PUBLIC", "IPv4-mapped", id="v4-mapped"),
    pytest.param(
        "https://internal.shop.example.com/hook",
        "URL_NOT_PUBLIC",
        "resolves to 10.20.30.40",
        id="name-resolving-private",
    ),
    pytest.param("https://nowhere.shop.example.com/hook", "URL_UNRESOLVABLE", "does not resolve", id="unresolvable"),
    pytest.param("http://shop.example.com/hook", "URL_SCHEME", "https", id="plain-http"),
    pytest.param("https://user:pw@shop.example.com/hook", "URL_CREDENTIALS", "credentials", id="credentials"),
]


@pytest.fixture
def private_name(dns: FakeDns) -> FakeDns:
    dns.names["internal.shop.example.com"] = ["10.20.30.40"]
    dns.names["mixed.shop.example.com"] = [PUBLIC_IP, "192.168.0.3"]
    return dns


@pytest.mark.parametrize(("url", "code", "fragment"), UNSAFE)
@pytest.mark.usefixtures("private_name")
def test_an_unsafe_webhook_url_is_refused(api: ApiClient, url: str, code: str, fragment: str) -> None:
    # When a merchant sets an unsafe default URL
    reply = api.request("PUT", ENDPOINT, {"url": url})
    # Then it is refused with the guard's code and reason, and nothing changes
    assert (reply.status, reply.body["code"]) == (400, code)
    assert fragment in reply.body["message"]
    assert api.request("GET", ENDPOINT).body["url"] is None


@pytest.mark.parametrize(("url", "code", "fragment"), UNSAFE)
@pytest.mark.usefixtures("private_name")
def test_an_unsafe_notify_url_is_refused(api: ApiClient, url: str, code: str, fragment: str) -> None:
    before = table_item_count()
    reply = api.create(notifyUrl=url)
    assert (reply.status, reply.body["code"]) == (400, "INVALID_URL")
    assert reply.body["message"].startswith("notifyUrl: ") and fragment in reply.body["message"]
    assert table_item_count() == before


@pytest.mark.usefixtures("private_name")
def test_a_name_with_one_private_address_among_public_ones_is_refused(api: ApiClient) -> None:
    reply = api.request("PUT", ENDPOINT, {"url": "https://mixed.shop.example.com/hook"})
    assert (reply.status, reply.body["code"]) == (400, "URL_NOT_PUBLIC")
    test = api.request("POST", TEST_PATH, {"url": "https://internal.shop.example.com/hook"})
    assert (test.status, test.body["code"]) == (400, "URL_NOT_PUBLIC")


def test_local_mode_allows_loopback_http_only(api: ApiClient, dns: FakeDns, settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("LOCAL_MODE", "1")
    config.reset()
    assert api.request("PUT", ENDPOINT, {"url": "http://127.0.0.1:8080/hook"}).status == 200
    private = api.request("PUT", ENDPOINT, {"url": "http://10.0.0.1/hook"})
    assert (private.status, private.body["code"]) == (400, "URL_NOT_PUBLIC")


@pytest.mark.parametrize(
    "url",
    ["http://[2002:7f00:1::]:8080/hook", "http://[64:ff9b::7f00:1]:8080/hook", "http://[::ffff:127.0.0.1]:8080/hook"],
)
def test_local_mode_refuses_addresses_that_only_embed_loopback(
    api: ApiClient, dns: FakeDns, settings_env: pytest.MonkeyPatch, url: str
) -> None:
    # Given local mode, where http to loopback receivers is allowed
    settings_env.setenv("LOCAL_MODE", "1")
    config.reset()
    before = table_item_count()
    # When a merchant gives a 6to4, NAT64 or IPv4-mapped form of 127.0.0.1 as default URL, notifyUrl or test URL
    endpoint = api.request("PUT", ENDPOINT, {"url": url})
    notify = api.create(notifyUrl=url)
    assert table_item_count() == before
    test = api.request("POST", TEST_PATH, {"url": url})
    # Then each is refused as what it embeds, and nothing is set, created or sent (the test only counted)
    assert (endpoint.status, endpoint.body["code"]) == (400, "URL_NOT_PUBLIC")
    assert (test.status, test.body["code"]) == (400, "URL_NOT_PUBLIC")
    assert (notify.status, notify.body["code"]) == (400, "INVALID_URL")
    for reply in (endpoint, test, notify):
        assert "embedding 127.0.0.1, a loopback address" in reply.body["message"]
    assert deliveries(api) == []


# --- the port policy ----------------------------------------------------------------------

OTHER_PORTS = [
    "https://shop.example.com:8443/hook",
    "https://shop.example.com:22/hook",
    f"https://{PUBLIC_IP}:6379/hook",
    "https://internal.shop.example.com:5432/hook",
]


@pytest.mark.parametrize("url", OTHER_PORTS)
@pytest.mark.usefixtures("private_name")
def test_a_webhook_url_on_another_port_than_443_is_refused(api: ApiClient, url: str) -> None:
    # Given the default port policy (443 only)
    before = table_item_count()
    # When a merchant gives a URL on another port as default URL, notifyUrl or test URL
    endpoint = api.request("PUT", ENDPOINT, {"url": url})
    notify = api.create(notifyUrl=url)
    assert table_item_count() == before
    test = api.request("POST", TEST_PATH, {"url": url})
    # Then each is a 400 naming the port and the allowed one, and nothing is set, created or sent
    assert (endpoint.status, endpoint.body["code"]) == (400, "URL_PORT_NOT_ALLOWED")
    assert (test.status, test.body["code"]) == (400, "URL_PORT_NOT_ALLOWED")
    assert (notify.status, notify.body["code"]) == (400, "INVALID_URL")
    port = url.rsplit(":", 1)[1].split("/")[0]
    for reply in (endpoint, test, notify):
        assert f"port {port} is not allowed; webhook URLs may use port 443" in reply.body["message"]
    assert api.request("GET", ENDPOINT).body["url"] is None
    assert deliveries(api) == []


@pytest.mark.usefixtures("dns")
def test_the_allowed_ports_are_the_operators_setting(api: ApiClient, settings_env: pytest.MonkeyPatch) -> None:
    # Given an operator allowing 443 and 8443
    settings_env.setenv("WEBHOOK_ALLOWED_PORTS", "443,8443")
    config.reset()
    # When a merchant sets a URL on 8443, and one on 9443
    allowed = api.request("PUT", ENDPOINT, {"url": "https://shop.example.com:8443/hook"})
    other = api.request("PUT", ENDPOINT, {"url": "https://shop.example.com:9443/hook"})
    # Then the first is set and the second refused, naming both allowed ports
    assert (allowed.status, allowed.body["url"]) == (200, "https://shop.example.com:8443/hook")
    assert (other.status, other.body["code"]) == (400, "URL_PORT_NOT_ALLOWED")
    assert other.body["message"] == "url: port 9443 is not allowed; webhook URLs may use ports 443, 8443"


@pytest.mark.usefixtures("dns")
def test_the_test_endpoint_refuses_a_default_url_the_policy_no_longer_allows(
    api: ApiClient, settings_env: pytest.MonkeyPatch
) -> None:
    # Given a default URL on 8443, set while the operator allowed it, and the policy back to 443
    settings_env.setenv("WEBHOOK_ALLOWED_PORTS", "443,8443")
    config.reset()
    assert set_url(api, "https://shop.example.com:8443/hook")["url"] == "https://shop.example.com:8443/hook"
    settings_env.delenv("WEBHOOK_ALLOWED_PORTS")
    config.reset()
    # When the merchant asks for a test event to it
    reply = api.request("POST", TEST_PATH)
    # Then it is refused up front, nothing sent or logged
    assert (reply.status, reply.body["code"]) == (400, "URL_PORT_NOT_ALLOWED")
    assert reply.body["message"] == "your webhook URL: port 8443 is not allowed; webhook URLs may use port 443"
    assert deliveries(api) == []


# --- the test endpoint's own limit -----------------------------------------------------------


@pytest.mark.usefixtures("webhook_queues", "fake_clock")
def test_the_test_endpoint_has_a_small_limit_of_its_own(
    api: ApiClient, stranger: ApiClient, settings_env: pytest.MonkeyPatch
) -> None:
    # Given 3 test events a minute per merchant, a key blocked after 1 request over its own limit,
    # and the gateway's clock stopped inside one minute (fake_clock stops it 30 s before the next)
    settings_env.setenv("WEBHOOK_TEST_RATE_LIMIT_PER_MINUTE", "3")
    settings_env.setenv("RATE_LIMIT_BLOCK_AFTER", "1")
    config.reset()
    with receiver() as shop:
        set_url(api, shop.url())
        # When the merchant asks for 6 test events
        replies = [api.request("POST", TEST_PATH) for _ in range(6)]
        # Then 3 are sent, and the others are 429 with Retry-After, never the 418 block, and not sent
        assert [r.status for r in replies] == [200, 200, 200, 429, 429, 429]
        assert len(shop.hits) == 3
    limited = replies[3]
    assert limited.body["code"] == "RATE_LIMITED"
    assert limited.body["message"] == "at most 3 test events a minute; retry after 30 s"
    assert limited.headers["retry-after"] == "30"
    assert len(deliveries(api, ("type", "webhook.test"))) == 3
    # And the key's other requests go on, and another merchant has a meter of its own
    assert api.request("GET", ENDPOINT).status == 200
    other = stranger.request("POST", TEST_PATH)
    assert (other.status, other.body["code"]) == (400, "WEBHOOK_URL_REQUIRED")
