"""What a second endpoint's answer means for a transfer about to be credited (chain/second_source.py):
confirmed, contradicted, or "cannot tell yet" (NotYet: the pass is retried), on EVM receipts and
Tron transaction infos shaped as nodes answer them; and the one-endpoint policy."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from usdt_gateway.address_codec import tron_body20
from usdt_gateway.chain import second_source
from usdt_gateway.chain.endpoints import Endpoints
from usdt_gateway.chain.jsonrpc import RpcUnavailable
from usdt_gateway.chain.second_source import NotYet, Verdict
from usdt_gateway.chain.transfers import TRANSFER_TOPIC, Transfer
from usdt_gateway.networks import load_networks

ETH = load_networks("eth")["eth"]
TRON = load_networks("tron")["tron"]
TOKEN = ETH.token_contract
SENDER, RECIPIENT = "0x" + "11" * 20, "0x" + "22" * 20
HASH, OTHER_HASH = "0x" + "aa" * 32, "0x" + "bb" * 32
TXID = "0x" + "cc" * 32


def word(address: str) -> str:
    return "0x" + "0" * 24 + address[2:].lower()


def transfer(**changes: Any) -> Transfer:
    base = {
        "network": "eth",
        "txid": TXID,
        "log_index": 1,
        "block_number": 100,
        "block_hash": HASH,
        "sender": SENDER,
        "recipient": RECIPIENT,
        "units": 25_000_000,
    }
    return Transfer(**(base | changes))  # type: ignore[arg-type]


def receipt(**changes: Any) -> dict[str, Any]:
    """A successful receipt whose second log (index 1 within the transaction) is the payment."""
    other = {"address": TOKEN, "topics": ["0x" + TRANSFER_TOPIC, word(SENDER), word(SENDER)], "data": "0x1"}
    pay = {
        "address": TOKEN.lower(),
        "topics": ["0x" + TRANSFER_TOPIC, word(SENDER), word(RECIPIENT)],
        "data": f"0x{25_000_000:064x}",
    }
    base = {
        "transactionHash": TXID,
        "blockHash": HASH,
        "blockNumber": hex(100),
        "status": "0x1",
        "logs": [other | {"logIndex": hex(7)}, pay | {"logIndex": hex(8)}],
    }
    return base | changes


class FakeRpc:
    """Answers eth_getTransactionReceipt, eth_getBlockByNumber (a number, or `finalized`) and
    eth_blockNumber from what it is given."""

    label = "second"

    def __init__(self, receipt: dict[str, Any] | None, *, block_hash: str | None = HASH, head: int = 200) -> None:
        self.receipt, self.block_hash, self.head = receipt, block_hash, head
        self.calls: list[str] = []

    def call(self, method: str, params: list[Any]) -> Any:
        self.calls.append(method)
        if method == "eth_getTransactionReceipt":
            return self.receipt
        if method == "eth_blockNumber":
            return hex(self.head)
        if params[0] == "finalized":
            return {"number": hex(self.head - 64)}
        return None if self.block_hash is None else {"hash": self.block_hash, "number": params[0]}

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        return [self.call(m, p) for m, p in calls]


def evm(rpc: FakeRpc, t: Transfer | None = None) -> tuple[Verdict, str]:
    (said,) = second_source.evm_findings(rpc, ETH, [t or transfer()])
    return said


def test_the_same_log_in_the_same_block_confirms_with_one_call() -> None:
    rpc = FakeRpc(receipt())
    assert evm(rpc) == (Verdict.CONFIRMED, "")
    assert rpc.calls == ["eth_getTransactionReceipt"]


@pytest.mark.parametrize(
    ("changes", "t_changes", "said"),
    [
        ({"status": "0x0"}, {}, "the transaction failed"),
        ({"logs": []}, {}, "holds no log"),
        ({}, {"log_index": 2}, "has no log 2"),
        ({}, {"units": 26_000_000}, "it transfers 25000000 base units, not 26000000"),
        ({}, {"recipient": "0x" + "33" * 20}, "is a transfer from"),
        ({}, {"sender": "0x" + "33" * 20}, "is a transfer from"),
        ({}, {"log_index": 0}, "is a transfer from"),  # the first log pays the sender itself
    ],
)
def test_a_receipt_in_the_block_that_says_otherwise_contradicts(
    changes: dict[str, Any], t_changes: dict[str, Any], said: str
) -> None:
    verdict, detail = evm(FakeRpc(receipt(**changes)), transfer(**t_changes))
    assert verdict == Verdict.CONTRADICTED and said in detail


def test_a_log_of_another_contract_contradicts() -> None:
    logs = receipt()["logs"]
    logs[1] = logs[1] | {"address": "0x" + "44" * 20}
    verdict, detail = evm(FakeRpc(receipt(logs=logs)))
    assert verdict == Verdict.CONTRADICTED and "is not a Transfer of" in detail


def test_no_receipt_and_the_same_block_there_contradicts() -> None:
    verdict, detail = evm(FakeRpc(None))
    assert verdict == Verdict.CONTRADICTED and "the transaction is in no block" in detail


def test_a_receipt_in_another_block_with_the_same_block_there_contradicts() -> None:
    verdict, detail = evm(FakeRpc(receipt(blockHash=OTHER_HASH, blockNumber=hex(101))))
    assert verdict == Verdict.CONTRADICTED and "in block 101" in detail


def test_an_endpoint_without_the_block_yet_cannot_tell() -> None:
    with pytest.raises(NotYet, match="has no block 100 yet"):
        evm(FakeRpc(None, block_hash=None))


def test_another_block_there_not_final_for_it_cannot_tell_yet_and_final_for_it_contradicts() -> None:
    # `finalized` 64 below its head: block 100 is not final at head 150, final at head 200
    with pytest.raises(NotYet, match="not final yet"):
        evm(FakeRpc(None, block_hash=OTHER_HASH, head=150))
    verdict, detail = evm(FakeRpc(None, block_hash=OTHER_HASH, head=200))
    assert verdict == Verdict.CONTRADICTED and f"final block 100 is {OTHER_HASH}" in detail


def test_a_malformed_receipt_is_the_endpoints_failure() -> None:
    with pytest.raises(RpcUnavailable):
        evm(FakeRpc(receipt(logs=[{"logIndex": "zz"}])))


def test_one_receipt_per_transaction_for_several_deposits() -> None:
    rpc = FakeRpc(receipt())
    said = second_source.evm_findings(rpc, ETH, [transfer(), transfer(log_index=0)])
    assert [v for v, _ in said] == [Verdict.CONFIRMED, Verdict.CONTRADICTED]
    assert rpc.calls == ["eth_getTransactionReceipt"]


# -- Tron ------------------------------------------------------------------------------------------


TRON_SENDER, TRON_RECIPIENT = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH", "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"
TRON_TXID, BLOCK_ID = "dd" * 32, "00" * 8 + "ee" * 24


def tron_transfer(**changes: Any) -> Transfer:
    base = {
        "network": "tron",
        "txid": TRON_TXID,
        "log_index": 0,
        "block_number": 100,
        "block_hash": BLOCK_ID,
        "sender": TRON_SENDER,
        "recipient": TRON_RECIPIENT,
        "units": 25_000_000,
    }
    return Transfer(**(base | changes))  # type: ignore[arg-type]


def info(**changes: Any) -> dict[str, Any]:
    topics = [TRANSFER_TOPIC, "0" * 24 + tron_body20(TRON_SENDER).hex(), "0" * 24 + tron_body20(TRON_RECIPIENT).hex()]
    base = {
        "id": TRON_TXID,
        "blockNumber": 100,
        "receipt": {"result": "SUCCESS"},
        "log": [{"address": tron_body20(TRON.token_contract).hex(), "topics": topics, "data": f"{25_000_000:064x}"}],
    }
    return base | changes


class FakeNode:
    label = "second"

    def __init__(self, info: dict[str, Any], *, block_id: str | None = BLOCK_ID, head: int = 200, solid: int = 180):
        self.info, self.block_id, self.head, self.solid = info, block_id, head, solid

    def make_request(self, method: str, params: Any = None) -> Any:
        if method == "wallet/gettransactioninfobyid":
            return self.info
        if method == "wallet/getnodeinfo":
            return {"block": f"Num:{self.head},ID:x", "solidityBlock": f"Num:{self.solid},ID:y"}
        return {} if self.block_id is None else {"blockID": self.block_id}


def tron(node: FakeNode, t: Transfer | None = None) -> tuple[Verdict, str]:
    return second_source.tron_finding(node, TRON, t or tron_transfer())


def test_tron_the_same_log_in_the_same_block_confirms() -> None:
    assert tron(FakeNode(info())) == (Verdict.CONFIRMED, "")


@pytest.mark.parametrize(
    ("changes", "t_changes", "said"),
    [
        ({"result": "FAILED", "receipt": {"result": "REVERT"}}, {}, "the transaction failed"),
        ({}, {"units": 1}, "not 1"),
        ({}, {"log_index": 1}, "has no log 1"),
        ({}, {"recipient": TRON_SENDER}, "is a transfer from"),
    ],
)
def test_tron_an_info_that_says_otherwise_contradicts(
    changes: dict[str, Any], t_changes: dict[str, Any], said: str
) -> None:
    verdict, detail = tron(FakeNode(info(**changes)), tron_transfer(**t_changes))
    assert verdict == Verdict.CONTRADICTED and said in detail


def test_tron_no_info_and_the_same_block_there_contradicts_and_a_missing_block_cannot_tell() -> None:
    verdict, detail = tron(FakeNode({}))
    assert verdict == Verdict.CONTRADICTED and "in no block" in detail
    with pytest.raises(NotYet):
        tron(FakeNode({}, block_id=None))


def test_tron_another_block_there_contradicts_only_once_solidified_on_that_node() -> None:
    with pytest.raises(NotYet):
        tron(FakeNode({}, block_id="ff" * 32, solid=99))
    verdict, _ = tron(FakeNode({}, block_id="ff" * 32, solid=100))
    assert verdict == Verdict.CONTRADICTED


# -- the policy --------------------------------------------------------------------------------------


class Reader:
    """Enough of a ChainReader for `check`."""

    def __init__(self, names: list[str], above: str | None) -> None:
        self.network = ETH.model_copy(update={"second_source_above": None if above is None else Decimal(above)})
        self.endpoints: Endpoints[Any] = Endpoints([(n, FakeRpc(receipt())) for n in names])
        self.scan_range = 1
        self.source: str | None = names[0]


def test_one_endpoint_trusts_up_to_the_threshold_and_asks_nothing() -> None:
    reader = Reader(["only"], "25")
    findings = second_source.check(reader, [transfer(units=25_000_000), transfer(units=25_000_001)])  # type: ignore[arg-type]
    assert [f.verdict for f in findings] == [Verdict.TRUSTED, Verdict.UNCONFIRMED]
    assert reader.endpoints.calls == {}
    no_threshold = Reader(["only"], None)
    assert second_source.check(no_threshold, [transfer(units=10**15)])[0].verdict == Verdict.TRUSTED  # type: ignore[arg-type]


def test_two_endpoints_ask_the_one_that_did_not_read_it_and_nothing_for_no_transfer() -> None:
    reader = Reader(["first", "second"], "25")
    assert second_source.check(reader, []) == []  # type: ignore[arg-type]
    assert reader.endpoints.calls == {}
    (finding,) = second_source.check(reader, [transfer()])  # type: ignore[arg-type]
    assert (finding.verdict, finding.endpoint) == (Verdict.CONFIRMED, "second")
    assert reader.endpoints.calls == {"second": 1}


def test_two_urls_of_one_host_are_one_source() -> None:
    reader = Reader(["host", "host"], None)
    assert [f.verdict for f in second_source.check(reader, [transfer()])] == [Verdict.TRUSTED]  # type: ignore[arg-type]
