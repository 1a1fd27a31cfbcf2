"""A gateway wired to the session's moto server: table from template.yaml, a KMS key, and the
API handler loaded as Lambda would load it. Each test gets its own merchant."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
import pytest
from bip_utils import Bip39MnemonicGenerator, Bip39SeedGenerator, Bip44, Bip44Coins

from devstack.stack import Stack, start_stack
from devstack.template import Template, create_table, load_template
from tests.integration.apiclient import ApiClient, load_handler
from tests.integration.sqs_lambda import EventSourceMapping, load_webhook_handler

TABLE = "usdt-gateway-test"


def _reset_caches() -> None:
    from usdt_gateway import auth, aws, config

    config.reset()
    aws.client.cache_clear()
    aws._session.cache_clear()
    auth._SECRETS.clear()


@cache
def _template() -> Template:
    return load_template()


# moto answers a query on the table's index by reading every item of the table, so a table that
# lived through the whole run made each test slower by all that the tests before it wrote (a query
# takes ~20 ms at 500 items, ~160 ms at 8,000). Each test module starts with the table empty
# instead: dropped and made again from the template before its first test, after the previous
# module's fixtures are torn down. Tests already keep apart by their own merchants and networks;
# what the process cached from the table's items (the listing key) goes with the table.
_table_endpoint: list[str] = []  # the moto server's URL once gateway_env has made the table
_table_module: list[str] = []  # the test module the table was last made for


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    module = item.nodeid.split("::", 1)[0]
    if _table_module == [module]:
        return
    _table_module[:] = [module]
    if _table_endpoint:
        from usdt_gateway import store

        client = boto3.client("dynamodb", endpoint_url=_table_endpoint[0])
        client.delete_table(TableName=TABLE)
        create_table(client, TABLE, _template())
        store._LISTING_SECRETS.pop(TABLE, None)


@pytest.fixture(scope="session")
def gateway_env(moto_server: str) -> Iterator[dict[str, str]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", moto_server)
        create_table(boto3.client("dynamodb", endpoint_url=moto_server), TABLE, _template())
        _table_endpoint[:] = [moto_server]
        key_id = boto3.client("kms", endpoint_url=moto_server).create_key()["KeyMetadata"]["KeyId"]
        env = {
            "TABLE_NAME": TABLE,
            "KMS_KEY_ID": key_id,
            "ENABLED_NETWORKS": "tron,eth,bsc,polygon",
            "PUBLIC_BASE_URL": "https://pay.example.com",
            "POWERTOOLS_METRICS_NAMESPACE": "UsdtGatewayTest",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_METRICS_DISABLED": "1",
        }
        for k, v in env.items():
            mp.setenv(k, v)
        _reset_caches()
        yield env
    _reset_caches()


@pytest.fixture
def settings_env(gateway_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change gateway settings for one test: set variables on the yielded monkeypatch, then
    call usdt_gateway.config.reset(). Restored afterwards."""
    yield monkeypatch
    monkeypatch.undo()
    _reset_caches()


@pytest.fixture(scope="session")
def handler(gateway_env: dict[str, str]) -> object:
    return load_handler()


def account_xpub(coin: Bip44Coins) -> str:
    """A fresh account-level xpub (m/44'/coin'/0') from a random mnemonic made at run time."""
    seed = Bip39SeedGenerator(Bip39MnemonicGenerator().FromWordsNumber(12)).Generate()
    return str(Bip44.FromSeed(seed, coin).Purpose().Coin().Account(0).PublicKey().ToExtended())


@dataclass
class Merchant:
    merchant_id: str
    api_key: str
    secret: str
    evm_xpub: str
    tron_xpub: str
    webhook_secret: str = ""


def new_merchant(*, fixed_evm: str | None = None, rate_limit: int | None = None) -> Merchant:
    from usdt_gateway import merchants

    m = merchants.create_merchant("test shop")
    key = merchants.create_api_key(m["merchantId"], rate_limit=rate_limit)
    evm, tron = account_xpub(Bip44Coins.ETHEREUM), account_xpub(Bip44Coins.TRON)
    if fixed_evm:
        merchants.configure_fixed(m["merchantId"], "evm", fixed_evm)
    else:
        merchants.configure_xpub(m["merchantId"], "evm", evm)
    merchants.configure_xpub(m["merchantId"], "tron", tron)
    return Merchant(m["merchantId"], key["apiKey"], key["secretKey"], evm, tron, m["webhookSecret"])


@pytest.fixture
def merchant(gateway_env: dict[str, str]) -> Merchant:
    return new_merchant()


@pytest.fixture
def api(handler: object, merchant: Merchant) -> ApiClient:
    return ApiClient(handler, merchant.api_key, merchant.secret)


def table_item_count() -> int:
    client = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    return sum(p["Count"] for p in client.get_paginator("scan").paginate(TableName=TABLE, Select="COUNT"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running local stack (`make dev` in-process), one per test module that asks for it."""
    running = start_stack(port=0, state_dir=tmp_path_factory.mktemp("stack-state"))
    try:
        yield running
    finally:
        running.stop()


# A public address (TEST-NET ranges are refused as documentation addresses).
PUBLIC_IP = "93.184.215.14"


@dataclass
class FakeDns:
    """Answers the SSRF guard's lookups from `names` (the machine has no outside DNS); any other
    name does not resolve."""

    names: dict[str, list[str]] = field(default_factory=dict)

    def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.names[host])


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """The resolver behind every check of a merchant URL, with shop.example.com public."""
    from usdt_gateway.webhooks import endpoints

    fake = FakeDns({"shop.example.com": [PUBLIC_IP]})
    monkeypatch.setattr(endpoints, "resolver", fake)
    return fake


@dataclass(frozen=True)
class WebhookQueues:
    queue: str
    dlq: str


@pytest.fixture
def webhook_queues(settings_env: pytest.MonkeyPatch, dns: FakeDns) -> Iterator[WebhookQueues]:
    """A webhook queue and DLQ of their own, local mode (receivers on 127.0.0.1 over http) and a
    compressed retry schedule: 4 attempts, a second apart."""
    from usdt_gateway import config

    sqs = boto3.client("sqs")
    name = f"webhooks-{time.time_ns()}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    queue = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    for var, value in {
        "WEBHOOK_QUEUE_URL": queue,
        "WEBHOOK_DLQ_URL": dlq,
        "WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,0.5",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "LOCAL_MODE": "1",
    }.items():
        settings_env.setenv(var, value)
    config.reset()
    yield WebhookQueues(queue, dlq)
    sqs.delete_queue(QueueUrl=queue)
    sqs.delete_queue(QueueUrl=dlq)


@pytest.fixture
def lambda_sqs(webhook_queues: WebhookQueues) -> EventSourceMapping:
    """The webhook function behind the queue, fed as Lambda's event source mapping feeds it."""
    return EventSourceMapping(webhook_queues.queue, load_webhook_handler())


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright for a browser test module (imported here only when one asks for it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    """One headless Chromium per browser test module (devstack.browser.launch)."""
    from devstack.browser import launch

    running = launch(playwright)
    yield running
    running.close()
