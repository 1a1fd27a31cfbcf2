"""The logging helpers: keys scoped to a block and a thread, URLs without their credentials, and
how RPC endpoints are named."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest

from usdt_gateway.chain.rpc_config import load_endpoints
from usdt_gateway.observability import log_keys, logger, order_keys, redact_url


@pytest.fixture
def lines() -> Iterator[list[dict[str, object]]]:
    """The Powertools logger's lines, as its formatter writes them, starting from no keys: an API
    invocation earlier in the process leaves its keys until the next one clears them, as in Lambda."""
    logger.thread_safe_clear_keys()
    out: list[dict[str, object]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.append(json.loads(logger.registered_formatter.format(record)))

    handler = Collect()
    logging.getLogger(logger.name).addHandler(handler)
    yield out
    logging.getLogger(logger.name).removeHandler(handler)


def test_keys_last_for_their_block_and_an_inner_block_can_remove_one(lines: list[dict[str, object]]) -> None:
    with log_keys(order_id="o-1", merchant_id="m_1"):
        logger.info("outer")
        with log_keys(order_id=None, event_id="evt_1"):
            logger.info("inner")
        logger.info("outer again")
    logger.info("after")
    keys = [{k: line.get(k) for k in ("order_id", "merchant_id", "event_id") if k in line} for line in lines]
    assert keys == [
        {"order_id": "o-1", "merchant_id": "m_1"},
        {"merchant_id": "m_1", "event_id": "evt_1"},
        {"order_id": "o-1", "merchant_id": "m_1"},
        {},
    ]


def test_keys_of_one_thread_never_reach_another(lines: list[dict[str, object]]) -> None:
    # Given two threads logging in turns, each inside its own order's keys
    turns = [threading.Event() for _ in range(4)]

    def worker(order: str, mine: list[int]) -> None:
        with log_keys(order_id=order):
            for step in mine:
                turns[step].wait(60)  # a guard against a hang only: the turn comes in microseconds
                logger.info("step", extra={"step": step, "who": order})
                if step + 1 < len(turns):
                    turns[step + 1].set()

    threads = [threading.Thread(target=worker, args=("A", [0, 2])), threading.Thread(target=worker, args=("B", [1, 3]))]
    for t in threads:
        t.start()
    turns[0].set()
    for t in threads:
        t.join(60)
    # Then every line carries its own thread's order, interleaved as they were
    assert [(line["step"], line["who"], line["order_id"]) for line in lines] == [
        (0, "A", "A"),
        (1, "B", "B"),
        (2, "A", "A"),
        (3, "B", "B"),
    ]


@pytest.mark.parametrize(
    ("url", "bare", "with_path"),
    [
        (
            "https://eth-mainnet.g.alchemy.com/v2/SECRETKEY",
            "https://eth-mainnet.g.alchemy.com",
            "https://eth-mainnet.g.alchemy.com/v2/SECRETKEY",
        ),
        (
            "https://user:PASSWORD@rpc.example:8545/?apikey=KEY#frag",
            "https://rpc.example:8545",
            "https://rpc.example:8545/",
        ),
        ("http://[::1]:8545/x?token=T", "http://[::1]:8545", "http://[::1]:8545/x"),
        ("http://shop.example/hook?token=MERCHANTTOKEN", "http://shop.example", "http://shop.example/hook"),
        ("http://host:notaport/", "<invalid url>", "<invalid url>"),
    ],
)
def test_urls_lose_their_credentials(url: str, bare: str, with_path: str) -> None:
    assert redact_url(url) == bare
    assert redact_url(url, keep_path=True) == with_path


def test_order_keys_come_from_the_order_key() -> None:
    assert order_keys("ORDER#m_0123#shop-order:42") == {"order_id": "shop-order:42", "merchant_id": "m_0123"}
    assert order_keys("DEP#eth#0xabc#1") == {} and order_keys(None) == {}


def test_rpc_endpoints_are_named_by_name_or_host_never_by_url() -> None:
    specs = load_endpoints(
        {},
        raw=json.dumps(
            {
                "eth": [
                    "https://user:PASSWORD@eth.example/v2/KEY",
                    "http://127.0.0.1:8545/KEY",
                    {"url": "https://eth.example/v2/OTHERKEY", "name": "alchemy"},
                ]
            }
        ),
    )
    assert [s.name for s in specs["eth"]] == ["eth.example", "127.0.0.1:8545", "alchemy"]
    with pytest.raises(Exception, match="name"):
        load_endpoints({}, raw=json.dumps({"eth": [{"url": "https://eth.example", "name": "has spaces/and slash"}]}))
