"""Many payments in one block, on anvil with the real TestUSDT: the scanner writes the deposits of
different addresses at once (Scanner.workers threads) and must end where one-at-a-time ends, each
payment credited once; a worker that fails fails the cycle before its cursor moves."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from web3 import Web3

from devstack.evm import start_anvil, usdt
from tests.integration.apiclient import ApiClient
from tests.integration.chains import EvmChain, create, drive, evm_scanner, new_chain, order_events, status
from tests.integration.conftest import new_merchant
from usdt_gateway import cursor, deposits, store
from usdt_gateway.observability import log_keys, logger
from usdt_gateway.scanner import Scanner

PAID = 50  # orders paid exactly, all in one block


@pytest.fixture
def api(handler: object, gateway_env: dict[str, str]) -> ApiClient:
    """A merchant whose key allows the hundreds of requests these tests make within a minute."""
    merchant = new_merchant(rate_limit=100_000)
    return ApiClient(handler, merchant.api_key, merchant.secret)


@pytest.fixture
def anvil() -> Iterator[Any]:
    with start_anvil() as node:
        yield node


def pay_in_one_block(chain: EvmChain, payments: list[tuple[str, str]]) -> list[str]:
    """Send every (address, amount) transfer, then mine them into one block; returns the txids
    in the block's order."""
    chain.anvil.rpc("evm_setAutomine", [False])
    try:
        sent = [
            chain.token.functions.transfer(Web3.to_checksum_address(to), usdt(amount)).transact({"from": chain.payer})
            for to, amount in payments
        ]
        chain.anvil.rpc("evm_mine")
    finally:
        chain.anvil.rpc("evm_setAutomine", [True])
    receipts = [chain.w3.eth.get_transaction_receipt(tx) for tx in sent]
    assert all(r["status"] == 1 for r in receipts)
    assert len({r["blockNumber"] for r in receipts}) == 1, "the transfers did not fit one block"
    return ["0x" + bytes(tx).hex() for tx in sent]


def event_types(api: ApiClient, order: dict[str, Any]) -> list[str]:
    """The order's webhook event types, in its event sequence."""
    return [b["type"] for b in order_events(api, order)]


@dataclass
class Burst:
    orders: list[dict[str, Any]]  # PAID orders paid exactly, then one paid in two parts, one underpaid
    txids: list[str]  # in block order
    scanner: Scanner
    calls: list[tuple[str, str, str, str]]  # (function, thread, recipient, txid): record_seen, credit_final


def burst(api: ApiClient, chain: EvmChain, workers: int, monkeypatch: pytest.MonkeyPatch) -> Burst:
    """PAID exact payments in one block, and among them payments whose order within an address
    matters: an order paid in two parts, one paid twice, one underpaid, and dust (ignored);
    scanned while seen, then final."""
    orders = [create(api, chain, f"{10 + n}.00") for n in range(PAID)]
    split, short = create(api, chain, "55.00"), create(api, chain, "30.00")
    payments = [(o["address"], o["amount"]) for o in orders]
    payments[1:1] = [(split["address"], "25.00")]
    payments[7:7] = [(orders[3]["address"], orders[3]["amount"])]  # after the payment of orders[3]
    payments[20:20] = [(orders[5]["address"], "0.001"), (split["address"], "30.00"), (short["address"], "29.00")]
    txids = pay_in_one_block(chain, payments)
    calls: list[tuple[str, str, str, str]] = []
    reals = {name: getattr(deposits, name) for name in ("record_seen", "credit_final")}

    def recorder(real: Callable[..., Any]) -> Callable[..., Any]:
        def recording(t: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append((real.__name__, threading.current_thread().name, t.recipient, t.txid))
            return real(t, *args, **kwargs)

        return recording

    for name, real in reals.items():
        monkeypatch.setattr(deposits, name, recorder(real))
    # (with no time limit on the seen pass: the two runs are compared pass for pass)
    scanner = evm_scanner(chain.network, [chain.anvil.url], workers=workers, seen_budget_ms=10**9)
    drive(scanner)  # the block is seen, not final yet
    assert scanner.report.seen == len(payments) - 1  # all but the dust
    chain.mine(1)
    drive(scanner)
    for name, real in reals.items():
        monkeypatch.setattr(deposits, name, real)
    return Burst([*orders, split, short], txids, scanner, calls)


def record(b: Burst, txid: str) -> tuple[str, int, int | None]:
    """A deposit's record: its status, units and order (its position in the burst's orders)."""
    item = store.get(*store.deposit_key(b.scanner.network.name, txid, 0))
    assert item is not None, txid
    position = {o["orderId"]: n for n, o in enumerate(b.orders)}
    return item["depositStatus"], int(item["units"]), position.get((item.get("orderPk") or "").split("#")[-1])


def outcome(api: ApiClient, b: Burst) -> dict[str, Any]:
    """What a merchant sees afterwards, with txids as their positions in the block (the two runs
    are on two chains)."""
    position = {txid: n for n, txid in enumerate(b.txids)}
    views = [status(api, o) for o in b.orders]
    return {
        "orders": [
            (
                v["status"],
                v["exception"],
                v["paidAmount"],
                [(position[d["txid"]], d["amount"], d["final"]) for d in v["deposits"]],
            )
            for v in views
        ],
        "events": [event_types(api, o) for o in b.orders],
        "records": [record(b, txid) for txid in b.txids],
        "report": (
            b.scanner.report.seen,
            b.scanner.report.credited,
            b.scanner.report.unmatched,
            b.scanner.report.ignored,
        ),
    }


def in_chain_order_per_address(b: Burst) -> bool:
    """In each pass, each address's deposits were written in block order."""
    position = {txid: n for n, txid in enumerate(b.txids)}
    per_address: dict[tuple[str, str], list[int]] = {}
    for function, _thread, recipient, txid in b.calls:
        per_address.setdefault((function, recipient), []).append(position[txid])
    return all(ns == sorted(ns) for ns in per_address.values())


def test_a_block_of_payments_is_credited_at_once_as_one_at_a_time_would(
    api: ApiClient, anvil: Any, settings_env: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the same burst on two chains, scanned one deposit at a time and then by 8 workers
    alone = burst(api, new_chain(anvil, settings_env), 1, monkeypatch)
    expected = outcome(api, alone)
    at_once = burst(api, new_chain(anvil, settings_env), 8, monkeypatch)
    # Then the workers did share the block, each address in chain order, and every order, event
    # and deposit record is the same
    assert {thread for _, thread, _, _ in alone.calls} == {threading.current_thread().name}
    assert len({thread for _, thread, _, _ in at_once.calls}) > 1
    assert in_chain_order_per_address(alone) and in_chain_order_per_address(at_once)
    assert outcome(api, at_once) == expected
    # and that is: each payment credited once, each order paid exactly confirmed
    orders, events = expected["orders"], expected["events"]
    exact = [n for n in range(PAID) if n != 3]
    for n in exact:
        assert orders[n][:3] == ("confirmed", None, at_once.orders[n]["amount"]) and len(orders[n][3]) == 1
        assert events[n] == ["order.confirming", "order.confirmed"]
    assert orders[3] == ("confirmed", "overpaid", "26.00", [(4, "13.00", True), (7, "13.00", True)])
    assert events[3] == ["order.confirming", "order.confirmed", "order.overpaid"]
    assert orders[PAID] == ("confirmed", None, "55.00", [(1, "25.00", True), (21, "30.00", True)])
    assert orders[PAID + 1][:3] == ("underpaid", None, "29.00")
    assert events[PAID + 1] == ["order.confirming", "order.underpaid"]
    statuses = [st for st, _, _ in expected["records"]]
    assert statuses[20] == "ignored" and statuses.count("credited") == len(at_once.txids) - 1
    assert expected["report"] == (len(at_once.txids) - 1, len(at_once.txids) - 1, 0, 1)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(logger.registered_formatter)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(self.format(record)))


def test_a_credit_logged_by_a_worker_carries_its_order_and_the_scan_keys(
    api: ApiClient, anvil: Any, settings_env: pytest.MonkeyPatch
) -> None:
    # Given ten payments in one block, final
    chain = new_chain(anvil, settings_env)
    orders = [create(api, chain, "5.00") for _ in range(10)]
    txids = pay_in_one_block(chain, [(o["address"], o["amount"]) for o in orders])
    chain.mine(1)
    lines = _Lines()
    logging.getLogger(logger.name).addHandler(lines)
    try:
        # When the scanner's thread has a key of its own and credits them with workers
        with log_keys(scan="burst"):
            drive(evm_scanner(chain.network, [chain.anvil.url], workers=4))
    finally:
        logging.getLogger(logger.name).removeHandler(lines)
    # Then each credit's line names its own order, and the scanner thread's key came along
    credited = {r["txid"]: r for r in lines.records if r["message"] == "deposit credited"}
    assert set(credited) == set(txids)
    for o, txid in zip(orders, txids, strict=True):
        assert (credited[txid]["order_id"], credited[txid]["scan"]) == (o["orderId"], "burst")


def test_a_failing_worker_keeps_the_cursor_and_a_rerun_credits_the_rest_once(
    api: ApiClient, anvil: Any, settings_env: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 20 payments in one final block, and a DynamoDB that refuses the credit of one of them
    chain = new_chain(anvil, settings_env)
    scanner = evm_scanner(chain.network, [chain.anvil.url], workers=8)
    drive(scanner)
    before = cursor.read(chain.network)
    assert before is not None
    orders = [create(api, chain, f"{n}.00") for n in range(1, 21)]
    pay_in_one_block(chain, [(o["address"], o["amount"]) for o in orders])
    chain.mine(1)
    victim = orders[12]["address"]
    real = deposits.credit_final

    def refuse_one(t: Any, *args: Any, **kwargs: Any) -> Any:
        if t.recipient == victim:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "TransactWriteItems",
            )
        return real(t, *args, **kwargs)

    monkeypatch.setattr(deposits, "credit_final", refuse_one)
    state = cursor.acquire(chain.network, scanner.owner, now=scanner._now(), lease_ms=scanner.lease_ms)
    assert state is not None
    # When a cycle credits the block, the failure ends the cycle
    with pytest.raises(ClientError):
        scanner.cycle(state)
    # Then the cursor stayed where it was, and the refused payment is not counted
    after = cursor.read(chain.network)
    assert after is not None and (after["finalBlock"], after["finalHash"]) == (
        before["finalBlock"],
        before["finalHash"],
    )
    assert status(api, orders[12])["paidAmount"] == "0.00"
    done_before = sum(status(api, o)["status"] == "confirmed" for o in orders)
    assert scanner.report.credited == 0  # a failed pass counts nothing
    # and the next cycles credit what is left, each payment once
    monkeypatch.setattr(deposits, "credit_final", real)
    drive(scanner)
    assert scanner.report.credited == len(orders) - done_before
    for o in orders:
        done = status(api, o)
        assert (done["status"], done["paidAmount"], len(done["deposits"])) == ("confirmed", o["amount"], 1)
        assert event_types(api, o).count("order.confirmed") == 1


def test_a_seen_pass_past_its_time_leaves_the_rest_to_crediting(
    api: ApiClient, anvil: Any, settings_env: pytest.MonkeyPatch
) -> None:
    # Given 10 payments in one block not final yet, and a scanner whose clock moves 100 ms each
    # time it is read, with 250 ms for a seen pass
    chain = new_chain(anvil, settings_env)
    ticks, start = itertools.count(), time.time()
    scanner = evm_scanner(
        chain.network, [chain.anvil.url], workers=1, seen_budget_ms=250, clock=lambda: start + next(ticks) / 10
    )
    drive(scanner)
    orders = [create(api, chain, f"{n}.00") for n in range(1, 11)]
    pay_in_one_block(chain, [(o["address"], o["amount"]) for o in orders])
    # When the seen pass runs out of time
    drive(scanner)
    seen = [status(api, o)["status"] for o in orders]
    # Then it stopped early, in chain order, and left its cursor before the block
    assert 0 < seen.count("confirming") < len(orders)
    assert seen == sorted(seen, key=lambda s: s != "confirming")
    item = cursor.read(chain.network)
    assert item is not None and item["seenBlock"] < chain.head()
    # And once the block is final every payment is credited, once, none left behind
    chain.mine(1)
    drive(scanner)
    assert all(status(api, o)["status"] == "confirmed" for o in orders)
    assert scanner.report.credited == len(orders)
