"""The scanner and the payment lifecycle on anvil with the real TestUSDT: orders are created
through the API handler, paid with real token transfers, and read back through the API."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pytest

from devstack.evm import deploy_batch_payer, start_anvil, usdt
from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient
from tests.integration.chains import (
    EvmChain,
    create,
    deposits_listed,
    drive,
    evm_scanner,
    killed_after_one_credit,
    new_chain,
    status,
)
from tests.integration.conftest import new_merchant
from tests.integration.rpc_proxy import RpcProxy
from usdt_gateway import cursor, expiry, store
from usdt_gateway.chain.transfers import Transfer
from usdt_gateway.observability import metrics
from usdt_gateway.scanner import ChainMoved


@pytest.fixture
def chain(settings_env: pytest.MonkeyPatch) -> Iterator[EvmChain]:
    with start_anvil() as anvil:
        yield new_chain(anvil, settings_env)


def test_exact_payment_goes_pending_confirming_confirmed(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    assert status(api, order)["status"] == "pending"

    txid = chain.pay(order["address"], "25.00")
    drive(scanner)
    seen = status(api, order)
    assert seen["status"] == "confirming"
    assert seen["paidAmount"] == "0.00" and seen["pendingAmount"] == "25.00"
    assert [(d["txid"], d["final"], d["confirmations"]) for d in seen["deposits"]] == [(txid, False, 1)]

    chain.mine(1)
    drive(scanner)
    done = status(api, order)
    assert done["status"] == "confirmed"
    assert done["paidAmount"] == "25.00" and done["txid"] == txid and done["confirmedAt"] is not None
    assert done["exception"] is None
    assert [(d["txid"], d["final"], d["confirmations"]) for d in done["deposits"]] == [(txid, True, 2)]


def test_scanner_emits_lag_detection_latency_and_rpc_error_metrics(api: ApiClient, chain: EvmChain) -> None:
    proxy, other = FlakyProxy(chain.anvil.url), RpcProxy(chain.anvil.url)
    try:
        # Given a payment, and a preferred endpoint that fails (a third one confirms the payment)
        proxy.mode = "fail"
        order = create(api, chain)
        chain.pay(order["address"], "25.00")
        chain.mine(3)
        metrics.clear_metrics()
        # When the scanner credits it
        drive(evm_scanner(chain.network, [proxy.url, chain.anvil.url, other.url]))
        assert status(api, order)["status"] == "confirmed"
        # Then the operator's figures are in the metric set: lag in blocks and seconds, the time
        # from the payment's block to its crediting, and the endpoint's errors
        emitted = {m["Name"] for d in metrics.serialize_metric_set()["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        assert {"ScannerLagBlocks", "ScannerLagSeconds", "DetectionLatency", "DepositsCredited", "RpcErrors"} <= emitted
        assert metrics.metric_set["ScannerLagBlocks"]["Value"][-1] == 1.0  # 2 confirmations: head - final
    finally:
        metrics.clear_metrics()
        proxy.close()
        other.close()


def test_partial_payment_is_underpaid_until_the_top_up(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain, "30.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(order["address"], "10.00")
    chain.mine(1)
    drive(scanner)
    partial = status(api, order)
    assert (partial["status"], partial["paidAmount"]) == ("underpaid", "10.00")

    chain.pay(order["address"], "20.00")
    drive(scanner)
    assert status(api, order)["status"] == "confirming"
    chain.mine(1)
    drive(scanner)
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["exception"]) == ("confirmed", "30.00", None)
    assert len(done["deposits"]) == 2 and all(d["final"] for d in done["deposits"])


def test_overpayment_confirms_and_records_the_excess(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain, "12.00")
    chain.pay(order["address"], "12.50")
    chain.mine(1)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    done = status(api, order)
    assert (done["status"], done["exception"], done["paidAmount"], done["excessAmount"]) == (
        "confirmed",
        "overpaid",
        "12.50",
        "0.50",
    )


def test_underpayment_within_the_tolerance_confirms(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("UNDERPAYMENT_TOLERANCE", "0.005")  # below the networks' 0.01 minimum order
    from usdt_gateway import config

    config.reset()
    order = create(api, chain, "40.00")
    chain.pay(order["address"], "39.995")
    chain.mine(1)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    assert (status(api, order)["status"], status(api, order)["paidAmount"]) == ("confirmed", "39.995")


def test_nothing_paid_expires_once_final_blocks_pass_the_expiry(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain, expiresIn=60)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    assert status(api, order)["status"] == "pending"
    chain.warp(90)  # the chain's clock passes the expiry...
    drive(scanner)
    assert status(api, order)["status"] == "pending"  # ...but that block is not final yet
    chain.mine(1)
    drive(scanner)
    assert status(api, order)["status"] == "expired"


def test_partial_payment_then_expiry_fails_the_order(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain, "20.00", expiresIn=60)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(order["address"], "5.00")
    chain.warp(90)
    chain.mine(1)
    drive(scanner)
    failed = status(api, order)
    assert (failed["status"], failed["paidAmount"]) == ("failed", "5.00")


def test_payment_made_before_expiry_counts_though_found_after_it(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain, expiresIn=60)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(order["address"], "25.00")  # in time; the scanner is down
    chain.warp(300)
    chain.mine(3)
    drive(scanner)  # back: the payment and the expiry are both in final blocks
    done = status(api, order)
    assert (done["status"], done["exception"]) == ("confirmed", None)
    assert done["deposits"][0]["blockTime"] <= done["expiresAt"]


def test_late_payment_inside_the_grace_window_is_credited_and_flagged(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain, expiresIn=60)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.warp(120)
    chain.mine(1)
    drive(scanner)
    assert status(api, order)["status"] == "expired"

    chain.pay(order["address"], "25.00")
    drive(scanner)
    assert status(api, order)["status"] == "confirming"
    chain.mine(1)
    drive(scanner)
    late = status(api, order)
    assert (late["status"], late["exception"], late["paidAmount"]) == ("confirmed", "paid_late", "25.00")
    assert late["deposits"][0]["blockTime"] > late["expiresAt"]


def test_second_payment_is_unmatched_and_can_be_attached(api: ApiClient, chain: EvmChain) -> None:
    first, other = create(api, chain, "25.00"), create(api, chain, "25.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(first["address"], "25.00")
    chain.mine(1)
    drive(scanner)
    assert status(api, first)["status"] == "confirmed"

    again = chain.pay(first["address"], "25.00")  # the customer pays twice
    chain.mine(1)
    drive(scanner)
    assert status(api, first)["paidAmount"] == "25.00"  # not credited to the paid order
    unmatched = deposits_listed(api, unmatched=True)
    assert [(d["txid"], d["amount"], d["unmatched"]) for d in unmatched] == [(again, "25.00", True)]

    resp = api.request("POST", f"/v1/deposits/{unmatched[0]['depositId']}/attach", {"orderId": other["orderId"]})
    assert resp.status == 200, resp.body
    assert (resp.body["status"], resp.body["paidAmount"], resp.body["txid"]) == ("confirmed", "25.00", again)
    assert deposits_listed(api, unmatched=True) == []
    again_resp = api.request("POST", f"/v1/deposits/{unmatched[0]['depositId']}/attach", {"orderId": other["orderId"]})
    assert (again_resp.status, again_resp.body["code"]) == (409, "DEPOSIT_NOT_UNMATCHED")


def test_attach_refuses_unknown_deposits_and_orders(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain)
    missing = api.request("POST", f"/v1/deposits/{chain.network}:0x{'00' * 32}:0/attach", {"orderId": order["orderId"]})
    assert (missing.status, missing.body["code"]) == (404, "DEPOSIT_NOT_FOUND")
    bad = api.request("POST", "/v1/deposits/nonsense/attach", {"orderId": order["orderId"]})
    assert (bad.status, bad.body["code"]) == (400, "INVALID_DEPOSIT_ID")
    listing = api.request("GET", "/v1/deposits", query=[("unmatched", "maybe")])
    assert (listing.status, listing.body["code"]) == (400, "INVALID_PARAMETER")


def test_fixed_address_orders_are_told_apart_by_their_tagged_amounts(handler: object, chain: EvmChain) -> None:
    # Given a merchant receiving on one fixed address, and two live orders of 25.00 on it
    shop = chain.w3.eth.accounts[5]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
    fixed = new_merchant(fixed_evm=shop)
    client = ApiClient(handler, fixed.api_key, fixed.secret)
    first, second = create(client, chain, "25.00"), create(client, chain, "25.00")
    assert first["address"] == second["address"] == shop
    assert (first["amount"], second["amount"]) == ("25.00", "25.01")
    # When the customer of the second pays its exact tagged amount, and someone sends 25.005
    paid = chain.pay(shop, second["amount"])
    odd = chain.pay(shop, "25.005")
    chain.mine(1)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    # Then only the second order is paid, and the amount no order asked for is unmatched
    assert status(client, first)["status"] == "pending"
    done = status(client, second)
    assert (done["status"], done["paidAmount"], done["txid"]) == ("confirmed", "25.01", paid)
    assert [(d["txid"], d["amount"]) for d in deposits_listed(client, unmatched=True)] == [(odd, "25.005")]


def test_payment_to_an_unknown_address_changes_nothing(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay("0x" + "5a" * 20, "25.00")
    chain.mine(2)
    drive(scanner)
    assert status(api, order)["status"] == "pending"
    assert deposits_listed(api, unmatched=False) == []
    assert scanner.report.credited == scanner.report.unmatched == scanner.report.seen == 0


def test_transfer_made_through_another_contract_counts(api: ApiClient, chain: EvmChain) -> None:
    a, b = create(api, chain, "3.00"), create(api, chain, "4.00")
    batch = deploy_batch_payer(chain.w3, chain.owner)
    chain.w3.eth.wait_for_transaction_receipt(
        chain.token.functions.approve(batch.address, usdt("7")).transact({"from": chain.payer})
    )
    tx = batch.functions.pay(chain.token.address, [a["address"], b["address"]], [usdt("3"), usdt("4")]).transact(
        {"from": chain.payer}
    )
    chain.w3.eth.wait_for_transaction_receipt(tx)
    chain.mine(1)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    paid_a, paid_b = status(api, a), status(api, b)
    assert (paid_a["status"], paid_b["status"]) == ("confirmed", "confirmed")
    assert paid_a["txid"] == paid_b["txid"] == "0x" + bytes(tx).hex()


def test_reorg_of_a_seen_deposit_returns_the_order_to_pending(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(order["address"], "25.00")
    drive(scanner)
    assert status(api, order)["status"] == "confirming"

    chain.anvil.rpc("anvil_reorg", [1, []])  # the payment's block is replaced by an empty one
    chain.mine(2)
    drive(scanner)
    back = status(api, order)
    assert (back["status"], back["paidAmount"], back["pendingAmount"], back["deposits"]) == (
        "pending",
        "0.00",
        "0.00",
        [],
    )
    assert scanner.report.dropped == 1 and scanner.report.credited == 0
    assert deposits_listed(api, unmatched=False) == []


def test_reorg_at_the_finality_edge_never_credits(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(order["address"], "25.00")
    chain.mine(1)  # two confirmations: final under the policy, but not scanned yet
    chain.anvil.rpc("anvil_reorg", [2, []])  # the chain replaces both blocks before the scanner runs
    chain.mine(2)
    drive(scanner)
    assert (status(api, order)["status"], scanner.report.credited) == ("pending", 0)


def test_reorg_while_a_final_range_is_read_is_retried(
    api: ApiClient, chain: EvmChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a payment that becomes final, and a reorg that lands between the scanner's
    # eth_getLogs and its block-hash check
    order = create(api, chain)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    chain.pay(order["address"], "25.00")
    chain.mine(1)
    read = scanner.reader.transfers
    reorged: list[int] = []

    def transfers_then_reorg(recipients: Collection[str], start: int, end: int) -> list[Transfer]:
        found = read(recipients, start, end)
        if found and not reorged:
            reorged.append(chain.head())
            chain.anvil.rpc("anvil_reorg", [2, []])
        return found

    monkeypatch.setattr(scanner.reader, "transfers", transfers_then_reorg)
    state = cursor.acquire(chain.network, scanner.owner, now=scanner._now(), lease_ms=30_000)
    assert state is not None
    # When the cycle runs, it notices the block changed under it, credits nothing, keeps its cursor
    with pytest.raises(ChainMoved):
        scanner.cycle(state)
    assert status(api, order)["paidAmount"] == "0.00" and reorged
    chain.mine(2)
    drive(scanner)
    # Then the next cycles, on the new chain, find no payment
    assert (status(api, order)["status"], status(api, order)["paidAmount"]) == ("pending", "0.00")


def test_killed_scanner_resumes_without_loss_or_double_credit(
    api: ApiClient, chain: EvmChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = [create(api, chain, f"{n}.00") for n in (11, 12, 13)]
    for o in orders:
        chain.pay(o["address"], o["amount"])
    chain.mine(1)
    first = evm_scanner(chain.network, [chain.anvil.url])
    with killed_after_one_credit(monkeypatch), pytest.raises(SystemExit):
        drive(first)  # dies after crediting one of the three, before moving its cursor
    assert [status(api, o)["status"] for o in orders].count("confirmed") == 1
    assert cursor.acquire(chain.network, "successor", now=first._now(), lease_ms=1_000) is None  # still leased

    # Its successor runs once the dead one's lease has lapsed (its clock is past the lease)
    second = evm_scanner(
        chain.network, [chain.anvil.url], clock=lambda: time.time() + first.lease_ms / 1000 + 1, sleep=time.sleep
    )
    report = second.run(until=second.clock() + 1.0)
    assert not report.lease_busy and report.credited == 2
    for o in orders:
        done = status(api, o)
        assert (done["status"], done["paidAmount"], len(done["deposits"])) == ("confirmed", o["amount"], 1)


def test_a_scanner_whose_lease_lapsed_during_a_long_read_credits_nothing(
    api: ApiClient, chain: EvmChain, monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    # Given a scanner with a short lease whose read of a final range outlasts it, and a second
    # scanner that takes the lapsed lease meanwhile (both on the gateway's clock, which the test
    # sets: at the real time, as the chain's blocks carry it)
    fake_clock.ms = time.time_ns() // 1_000_000
    order = create(api, chain)
    slow = evm_scanner(chain.network, [chain.anvil.url], lease_ms=300)
    drive(slow)
    chain.pay(order["address"], "25.00")
    chain.mine(1)
    other = evm_scanner(chain.network, [chain.anvil.url], lease_ms=300)
    read = slow.reader.transfers

    def slow_read(recipients: Collection[str], start: int, end: int) -> list[Transfer]:
        found = read(recipients, start, end)
        fake_clock.advance(400)
        assert cursor.acquire(chain.network, other.owner, now=other._now(), lease_ms=30_000) is not None
        return found

    monkeypatch.setattr(slow.reader, "transfers", slow_read)
    state = cursor.acquire(chain.network, slow.owner, now=slow._now(), lease_ms=300)
    assert state is not None
    # When its cycle goes on to credit, it finds the lease gone and stops before any write
    with pytest.raises(cursor.LeaseLost):
        slow.cycle(state)
    assert (status(api, order)["status"], status(api, order)["paidAmount"]) == ("pending", "0.00")
    # Then the new holder credits the payment, once
    drive(other)
    done = status(api, order)
    assert (done["status"], done["paidAmount"], len(done["deposits"])) == ("confirmed", "25.00", 1)


def test_a_run_with_no_time_left_still_scans_once(api: ApiClient, chain: EvmChain) -> None:
    # Given a payment, and a scanner invocation with no scan time (SCAN_SECONDS=0: once per schedule)
    order = create(api, chain)
    chain.pay(order["address"], "25.00")
    chain.mine(1)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    # When it runs
    report = scanner.run(until=time.time() - 1)
    # Then it made exactly one cycle, credited the payment and released the lease
    assert (report.cycles, report.credited, report.lease_busy) == (1, 1, False)
    assert status(api, order)["status"] == "confirmed"
    assert cursor.acquire(chain.network, "next", now=scanner._now(), lease_ms=1_000) is not None


def test_two_scanners_at_once_never_scan_a_range_twice(api: ApiClient, chain: EvmChain) -> None:
    orders = [create(api, chain, "5.00") for _ in range(4)]
    scanners = [evm_scanner(chain.network, [chain.anvil.url], lease_ms=2_000, sleep=time.sleep) for _ in range(2)]
    ranges: list[tuple[int, int]] = []
    for s in scanners:
        read = s.reader.transfers

        def recording(
            recipients: Collection[str], from_block: int, to_block: int, read: Callable[..., list[Transfer]] = read
        ) -> list[Transfer]:
            ranges.append((from_block, to_block))
            return read(recipients, from_block, to_block)

        s.reader.transfers = recording  # type: ignore[method-assign]
    until = time.time() + 3.0
    threads = [threading.Thread(target=s.run, kwargs={"until": until}) for s in scanners]
    for t in threads:
        t.start()
    for o in orders:
        chain.pay(o["address"], "5.00")
        chain.mine(1)
    for t in threads:
        t.join()
    drive(scanners[0])
    # Each payment credited once; one scanner held the lease, the other waited
    assert sum(s.report.credited for s in scanners) == 4
    assert sorted(s.report.lease_busy for s in scanners) == [False, True]
    assert all(status(api, o)["paidAmount"] == "5.00" for o in orders)
    # and no block was read more than twice (once not final yet, once final) by the two together
    reads = Counter(b for start, end in ranges for b in range(start, end + 1))
    assert reads and max(reads.values()) <= 2


def test_expiry_racing_a_payment_leaves_the_order_confirmed(
    api: ApiClient, chain: EvmChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a payment made in time whose crediting starts while the expiry closes the order
    order = create(api, chain, expiresIn=60)
    chain.pay(order["address"], "25.00")
    chain.warp(90)
    chain.mine(1)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    real_get = store.get
    raced: list[str] = []

    def get_then_expire(pk: str, sk: str, **kw: object) -> dict[str, Any] | None:
        item = real_get(pk, sk, **kw)  # type: ignore[arg-type]
        if sk == "ORDER" and not raced and item and item["status"] == "pending":
            raced.append(pk)
            entry = next(e for e in scanner.watch.entries() if e.order_pk == pk)
            expiry.close(entry, chain.network)  # the expiry writes between the read and the write
        return item

    monkeypatch.setattr(store, "get", get_then_expire)
    drive(scanner)
    monkeypatch.setattr(store, "get", real_get)
    # Then the credit's conditional write failed on the version, was recomputed, and won
    done = status(api, order)
    assert raced and (done["status"], done["exception"], done["paidAmount"]) == ("confirmed", None, "25.00")


class FlakyProxy(RpcProxy):
    """An RPC endpoint in front of anvil (single calls and batches) that can answer 429 to
    everything, or lag: report a head `lag` blocks behind the chain's."""

    def __init__(self, upstream: str) -> None:
        self.mode = "ok"
        self.lag = 50
        super().__init__(upstream)

    def refuse(self) -> tuple[int, bytes] | None:
        return (429, b'{"error": "rate limited"}') if self.mode == "fail" else None

    def result(self, method: str, params: list[Any]) -> Any:
        reply = super().result(method, params)
        return hex(int(reply, 16) - self.lag) if self.mode == "lag" and method == "eth_blockNumber" else reply


def test_failing_endpoint_fails_over_and_is_counted(api: ApiClient, chain: EvmChain) -> None:
    # A third endpoint: with two, each credit waits for the second one's word (second_source.py)
    proxy, other = FlakyProxy(chain.anvil.url), RpcProxy(chain.anvil.url)
    try:
        proxy.mode = "fail"
        order = create(api, chain)
        scanner = evm_scanner(chain.network, [proxy.url, chain.anvil.url, other.url])
        chain.pay(order["address"], "25.00")
        chain.mine(1)
        drive(scanner)
        assert status(api, order)["status"] == "confirmed"
        assert scanner.reader.endpoints.errors[proxy.url] >= 1
        assert scanner.reader.endpoints.usable() == [chain.anvil.url, other.url]  # resting after its failure
    finally:
        proxy.close()
        other.close()


def test_lagging_endpoint_is_set_aside(api: ApiClient, chain: EvmChain) -> None:
    proxy = FlakyProxy(chain.anvil.url)
    try:
        proxy.mode = "lag"
        chain.mine(60)
        order = create(api, chain)
        # The lagging endpoint is preferred: unchecked, it would hide the last 50 blocks
        scanner = evm_scanner(chain.network, [proxy.url, chain.anvil.url])
        chain.pay(order["address"], "25.00")
        chain.mine(1)
        drive(scanner)
        assert scanner.reader.endpoints.usable() == [chain.anvil.url]
        assert status(api, order)["status"] == "confirmed"
    finally:
        proxy.close()
