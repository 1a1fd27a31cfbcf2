"""What the functions log, over a whole flow through the real handlers: the admin CLI makes a
merchant and its key, the API creates orders, anvil carries the payment, the scanner handler
credits it through an RPC endpoint whose URL holds a provider key, the webhook handler delivers
the events (a batch's records in threads), the webhook secret is rotated, and requests with bad
credentials are refused. Every line is captured: the Powertools logger's JSON lines as its own
formatter writes them, and everything else that reaches the root logger."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from bip_utils import Bip44Coins

from devstack.evm import start_anvil
from tests.integration.apiclient import ROOT, ApiClient
from tests.integration.chains import EvmChain, new_chain
from tests.integration.conftest import Merchant, WebhookQueues, account_xpub
from tests.integration.sqs_lambda import EventSourceMapping
from tests.integration.test_scanner_evm import FlakyProxy
from tests.integration.webhook_receiver import Reply, receiver
from tests.integration.webhooks import event_ids, settled
from usdt_gateway import config, outbox, store
from usdt_gateway.observability import logger, metrics

pytestmark = pytest.mark.usefixtures("gateway_env")

# Credentials in the RPC endpoint URLs, as providers hand them out (path, query, user info).
RPC_SECRETS = ("DEADPATHKEY", "rpcuser", "RPCPASSWORD", "LIVEPATHKEY", "LIVEQUERYKEY")
URL_TOKEN = "MERCHANTURLTOKEN"  # a token in the merchant's webhook URL
EXTRA_HEADERS = {"Authorization": "Bearer BEARERSECRETVALUE", "X-Signature": "XSIGNATURESECRET"}


class _Collect(logging.Handler):
    def __init__(self, lines: list[str], formatter: logging.Formatter) -> None:
        super().__init__(level=logging.NOTSET)
        self.lines = lines
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Logs:
    structured: list[str] = field(default_factory=list)  # the Powertools logger's lines
    other: list[str] = field(default_factory=list)  # std logging, root logger

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.structured]

    def everything(self) -> list[str]:
        return self.structured + self.other


@pytest.fixture
def logs() -> Iterator[Logs]:
    """Every line logged meanwhile, at the deployed level (INFO)."""
    captured = Logs()
    ours = logging.getLogger(logger.name)
    mine = _Collect(captured.structured, logger.registered_formatter)
    root, level = logging.getLogger(), logging.getLogger().level
    others = _Collect(captured.other, logging.Formatter("%(name)s %(levelname)s %(message)s"))
    ours.addHandler(mine)
    root.addHandler(others)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        ours.removeHandler(mine)
        root.removeHandler(others)
        root.setLevel(level)
        metrics.clear_metrics()  # metrics are off here, so nothing flushed the handlers' figures


@pytest.fixture
def chain(webhook_queues: WebhookQueues, settings_env: pytest.MonkeyPatch) -> Iterator[EvmChain]:
    with start_anvil() as anvil:
        yield new_chain(anvil, settings_env)


class Context:
    function_name = "ScannerFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:usdt-gateway-scanner"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def load_scanner() -> Any:
    """functions/scanner/app.py as Lambda loads it: its cold start builds the scanners from
    RPC_ENDPOINTS."""
    spec = importlib.util.spec_from_file_location(f"scanner_app_{uuid.uuid4().hex}", ROOT / "functions/scanner/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def admin(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    from usdt_gateway.admin import main

    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def cipher_texts(pk: str, sk: str) -> list[str]:
    item = store.get(pk, sk) or {}
    return [str(v) for k, v in item.items() if "cipher" in k.lower() and v]


def test_no_secret_reaches_a_log_line_and_every_order_line_names_its_order(
    logs: Logs,
    chain: EvmChain,
    handler: object,
    lambda_sqs: EventSourceMapping,
    settings_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with receiver() as shop:
        # Given a merchant, its API key and xpub made with the admin CLI, its webhooks going to a
        # URL with a token in its query (the first attempt answered 503)
        shop.answer(Reply(503))
        created = admin(
            capsys, "create-merchant", "--name", "log shop", "--webhook-url", shop.url(f"/hook?token={URL_TOKEN}")
        )
        merchant_id, first_secret = created["merchantId"], created["webhookSecret"]
        key = admin(capsys, "create-key", "--merchant", merchant_id)
        admin(
            capsys,
            "set-xpub",
            "--merchant",
            merchant_id,
            "--family",
            "evm",
            "--xpub",
            account_xpub(Bip44Coins.ETHEREUM),
        )
        api = ApiClient(handler, key["apiKey"], key["secretKey"])
        sent: list[dict[str, str]] = []
        real_invoke = api.invoke

        def invoke(event: dict[str, Any]) -> Any:
            sent.append(dict(event["headers"]))
            return real_invoke(event)

        api.invoke = invoke  # type: ignore[method-assign]
        # And the scanner's endpoints: one down, two through proxies (the third confirms each
        # credit as the second source), all with provider keys
        proxy, other = FlakyProxy(chain.anvil.url), FlakyProxy(chain.anvil.url)
        last_host = other.url.removeprefix("http://")  # the last endpoint a failing scan tries
        try:
            settings_env.setenv(
                "RPC_ENDPOINTS",
                json.dumps(
                    {
                        chain.network: [
                            "http://rpcuser:RPCPASSWORD@127.0.0.1:9/v2/DEADPATHKEY",
                            f"{proxy.url}/v3/LIVEPATHKEY?apikey=LIVEQUERYKEY",
                            f"{other.url}/v3/LIVEPATHKEY?apikey=LIVEQUERYKEY",
                        ]
                    }
                ),
            )
            settings_env.setenv("SCAN_SECONDS", "0")
            config.reset()
            scan = load_scanner()

            # When two orders are created, one paid and scanned (seen, then final), the other
            # cancelled, and a scan runs while every endpoint fails
            paid = api.create(network=chain.network, amount="25.00").body
            cancelled = api.create(network=chain.network, amount="7.00").body
            txid = chain.pay(paid["address"], "25.00")
            scan({"network": chain.network}, Context())
            chain.mine(1)
            scan({"network": chain.network}, Context())
            assert api.request("GET", f"/v1/payment/order/{paid['orderId']}").body["status"] == "confirmed"
            assert api.request("POST", f"/v1/payment/order/{cancelled['orderId']}/cancel").status == 200
            proxy.mode = other.mode = "fail"
            scan({"network": chain.network}, Context())
        finally:
            proxy.close()
            other.close()
        # And the webhook function delivers their events
        first = event_ids(merchant_id, paid["orderId"]) + event_ids(merchant_id, cancelled["orderId"])
        lambda_sqs.run_until(settled(*first))
        # And the webhook secret is rotated, then another order's event and a test event are sent
        rotated = admin(capsys, "rotate-webhook-secret", "--merchant", merchant_id)
        after = api.create(network=chain.network, amount="3.00").body
        assert api.request("POST", f"/v1/payment/order/{after['orderId']}/cancel").status == 200
        lambda_sqs.run_until(settled(*event_ids(merchant_id, after["orderId"])))
        assert api.request("POST", "/v1/webhooks/test", {}).status == 200
        # And requests with a bad signature, an unknown key and stray credential headers are refused
        for client, extra in (
            (ApiClient(handler, key["apiKey"], "sk_wrong"), {}),
            (ApiClient(handler, key["apiKey"], "sk_wrong"), EXTRA_HEADERS),
            (ApiClient(handler, "ak_unknownkey000000000", key["secretKey"]), {}),
        ):
            client.invoke = invoke  # type: ignore[method-assign]
            assert client.request("GET", f"/v1/payment/order/{paid['orderId']}", headers=extra).status == 401
            assert client.request("GET", "/v1/payment/orders", sign="v2", headers=extra).status == 401
        hits = list(shop.hits)

    # Then no line holds a secret: API key and secret key, webhook secrets (and their base64
    # part), their KMS ciphertexts, any signature sent or received, credential headers, RPC keys,
    # the merchant URL's token, a private key
    signatures = [v for h in sent for k, v in h.items() if k.lower().startswith("signature")]
    webhook_signatures = [s.split(",", 1)[1] for h in hits for s in h.headers["webhook-signature"].split()]
    secrets = {
        "API key": [key["apiKey"]],
        "secret key": [key["secretKey"]],
        "webhook secret": [s for w in (first_secret, rotated["webhookSecret"]) for s in (w, w.removeprefix("whsec_"))],
        "ciphertext": cipher_texts(*store.api_key_key(key["apiKey"])) + cipher_texts(*store.merchant_key(merchant_id)),
        "request signature": signatures,
        "webhook signature": webhook_signatures,
        "credential header": [*EXTRA_HEADERS.values(), "BEARERSECRETVALUE"],
        "RPC credential": list(RPC_SECRETS),
        "URL token": [URL_TOKEN],
        "private key": ["xprv", "PRIVATE KEY"],
    }
    assert len(signatures) >= 10 and len(webhook_signatures) >= 5 and len(secrets["ciphertext"]) == 3
    lines = logs.everything()
    leaks = [(what, line) for what, values in secrets.items() for v in values for line in lines if v in line]
    assert leaks == []

    # And every line about an order (naming its id, payment, address or events) carries that
    # order's order_id and its merchant_id, never another order's
    records = logs.records()
    orders = {}
    for order in (paid, cancelled, after):
        names = [order["orderId"], order["address"], *event_ids(merchant_id, order["orderId"])]
        orders[order["orderId"]] = names + ([txid, txid.removeprefix("0x")] if order is paid else [])
    for order_id, names in orders.items():
        about = [r for r in records if any(n in json.dumps(r) for n in names)]
        wrong = [r for r in about if (r.get("order_id"), r.get("merchant_id")) != (order_id, merchant_id)]
        assert about and wrong == [], order_id
        assert not [line for line in logs.other if any(n in line for n in names)]

    # ...among them the lines an operator follows an order by
    def messages(order_id: str) -> list[str]:
        return [r["message"] for r in records if r.get("order_id") == order_id]

    assert {
        "order created",
        "deposit seen (not final yet)",
        "deposit credited",
        "order status changed",
        "webhook delivered",
    } <= set(messages(paid["orderId"]))
    assert {"order created", "order status changed", "webhook delivered"} <= set(messages(cancelled["orderId"]))
    retried = [r for r in records if r["message"] == "webhook attempt failed; retrying"]
    assert len(retried) == 1 and retried[0]["order_id"] in (paid["orderId"], cancelled["orderId"])
    assert retried[0]["url"] == shop.url("/hook") and retried[0]["status_code"] == 503
    changes = [
        (r["from_status"], r["to_status"])
        for r in records
        if r["message"] == "order status changed" and r["order_id"] == paid["orderId"]
    ]
    assert changes == [("pending", "confirming"), ("confirming", "confirmed")]
    # And the refused requests and the failed scan are logged without any order's keys
    refused = [r for r in records if r["message"] == "request refused"]
    assert len(refused) == 6 and all("order_id" not in r and "merchant_id" not in r for r in refused)
    assert {r["api_key_prefix"] for r in refused} == {key["apiKey"][:7], "ak_unkn"}
    failed = [r for r in records if r["message"] == "scan cycle failed; retrying from the cursor"]
    assert len(failed) == 1 and "order_id" not in failed[0]
    # ...naming the endpoint by host and port only
    assert failed[0]["reason"] == f"every endpoint failed; last: {last_host}: HTTP 429"


def test_the_outbox_sweepers_lines_name_each_events_order(
    logs: Logs, api: ApiClient, merchant: Merchant, settings_env: pytest.MonkeyPatch
) -> None:
    # Given an order cancelled while no queue was configured: its event waits in the outbox
    order = api.create().body
    assert api.request("POST", f"/v1/payment/order/{order['orderId']}/cancel").status == 200
    (event_id,) = event_ids(merchant.merchant_id, order["orderId"])
    # When the sweeper runs with a queue
    queue = boto3.client("sqs").create_queue(QueueName=f"sweep-{uuid.uuid4().hex}")["QueueUrl"]
    settings_env.setenv("WEBHOOK_QUEUE_URL", queue)
    config.reset()
    try:
        assert event_id in outbox.sweep(now_ms=int(time.time() * 1000), older_than_ms=0)
    finally:
        boto3.client("sqs").delete_queue(QueueUrl=queue)
    # Then its line names the event, its order and its merchant
    (line,) = [r for r in logs.records() if r.get("event_id") == event_id]
    assert line["message"] == "publishing an event its writer did not hand to the queue"
    assert (line["order_id"], line["merchant_id"]) == (order["orderId"], merchant.merchant_id)
