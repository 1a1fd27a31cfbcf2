"""The fake Tron full node, read through tronpy's own HTTPProvider the way a deposit scanner reads
java-tron: node info, blocks, block-wide TransactionInfo lists, the solidity view, faults, reorgs."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from tronpy import Tron
from tronpy.exceptions import AddressNotFound, BlockNotFound, TransactionNotFound
from tronpy.keys import PrivateKey, to_base58check_address, to_hex_address
from tronpy.providers import HTTPProvider

from devstack.tron_node import TRANSFER_TOPIC, Trc20Transfer, TronNode, TrxTransfer, start_tron_node

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
ROUTER = "TXF1xDbVGdxFGbovmmmXvBGu8ZiE3Lq4mR"


def _address() -> str:
    return str(PrivateKey.random().public_key.to_base58check_address())


@pytest.fixture
def node() -> Iterator[TronNode]:
    with start_tron_node(blocks=30) as running:
        yield running


@pytest.fixture
def client(node: TronNode) -> Tron:
    return Tron(HTTPProvider(node.url, timeout=5))


def _infos(client: Tron, num: int, *, solidity: bool = False) -> Any:
    prefix = "walletsolidity" if solidity else "wallet"
    return client.provider.make_request(f"{prefix}/gettransactioninfobyblocknum", {"num": num})


def _post(node: TronNode, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        node.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_head_and_solid_numbers_come_from_getnodeinfo(node: TronNode, client: Tron) -> None:
    # Given
    head = node.mine(5)

    # When
    latest = client.get_latest_block_number()
    solid = client.get_latest_solid_block_number()

    # Then
    assert latest == head == 35
    assert solid == head - 19
    assert client.get_latest_block_id() == node.block_id(head)
    assert node.requests["/wallet/getnodeinfo"] == 3


def test_set_solid_pins_the_solidified_head(node: TronNode, client: Tron) -> None:
    # Given
    node.set_solid(25)

    # When
    node.mine(3)

    # Then
    assert client.get_latest_solid_block_number() == 25
    assert client.get_latest_solid_block()["block_header"]["raw_data"]["number"] == 25


def test_get_block_has_the_documented_block_shape(node: TronNode, client: Tron) -> None:
    # Given
    sender, recipient = _address(), _address()
    num = node.add_block([Trc20Transfer(USDT, sender, recipient, 5_000_000)])

    # When
    block = client.get_block(num)
    hex_block = client.get_block(num, visible=False)

    # Then
    raw = block["block_header"]["raw_data"]
    assert int(block["blockID"][:16], 16) == num
    assert raw["number"] == num
    assert raw["parentHash"] == node.block_id(num - 1)
    assert raw["timestamp"] == client.get_block(num - 1)["block_header"]["raw_data"]["timestamp"] + 3000
    assert raw["witness_address"].startswith("T")
    assert hex_block["block_header"]["raw_data"]["witness_address"].startswith("41")
    (tx,) = hex_block["transactions"]
    assert tx["ret"] == [{"contractRet": "SUCCESS"}]
    contract = tx["raw_data"]["contract"][0]
    assert contract["type"] == "TriggerSmartContract"
    value = contract["parameter"]["value"]
    assert value["contract_address"] == to_hex_address(USDT)
    assert value["owner_address"] == to_hex_address(sender)
    assert value["data"] == ("a9059cbb" + "00" * 12 + to_hex_address(recipient)[2:] + f"{5_000_000:064x}")
    assert block["transactions"][0]["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"] == sender


def test_empty_and_missing_blocks(node: TronNode, client: Tron) -> None:
    # Given
    num = node.add_block()

    # When
    block = client.get_block(num)
    genesis = client.get_block(0)

    # Then
    assert "transactions" not in block
    assert "number" not in genesis["block_header"]["raw_data"]
    assert client.provider.make_request("wallet/getblockbynum", {"num": num + 1}) == {}
    with pytest.raises(BlockNotFound):
        client.get_block(num + 1)


def test_transaction_infos_by_block_have_the_documented_log_shape(node: TronNode, client: Tron) -> None:
    # Given
    sender, recipient = _address(), _address()
    num = node.add_block([Trc20Transfer(USDT, sender, recipient, 5_000_000)])

    # When
    infos = _infos(client, num)

    # Then
    assert isinstance(infos, list)
    (info,) = infos
    assert info["id"] == node.txids(num)[0]
    assert info["blockNumber"] == num
    assert "result" not in info
    assert info["receipt"]["result"] == "SUCCESS"
    assert info["contract_address"] == to_hex_address(USDT)
    (log,) = info["log"]
    assert log["address"] == to_hex_address(USDT)[2:]
    assert not log["address"].startswith(("41", "0x"))
    topic0, from_topic, to_topic = log["topics"]
    assert topic0 == TRANSFER_TOPIC
    assert to_base58check_address(bytes.fromhex("41" + to_topic[-40:])) == recipient
    assert to_base58check_address(bytes.fromhex("41" + from_topic[-40:])) == sender
    assert int(log["data"], 16) == 5_000_000
    assert not any(s.startswith("0x") for s in [*log["topics"], log["data"]])


def test_failed_via_contract_and_trx_transactions(node: TronNode, client: Tron) -> None:
    # Given
    sender, recipient = _address(), _address()
    num = node.add_block(
        [
            Trc20Transfer(USDT, sender, recipient, 1, failed=True),
            Trc20Transfer(USDT, sender, recipient, 2, via_contract=ROUTER),
            TrxTransfer(sender, recipient, 1_000_000),
        ]
    )

    # When
    failed, routed, trx = _infos(client, num)

    # Then
    assert failed["result"] == "FAILED"
    assert bytes.fromhex(failed["resMessage"]).decode() == "REVERT opcode executed"
    assert failed["receipt"]["result"] == "REVERT"
    assert "log" not in failed
    assert routed["contract_address"] == to_hex_address(ROUTER)
    assert routed["log"][0]["address"] == to_hex_address(USDT)[2:]
    assert routed["internal_transactions"][0]["caller_address"] == to_hex_address(ROUTER)
    assert trx["receipt"] == {"net_fee": 267000}
    assert "log" not in trx and "result" not in trx
    block = client.get_block(num, visible=False)
    assert [t["ret"][0]["contractRet"] for t in block["transactions"]] == ["REVERT", "SUCCESS", "SUCCESS"]
    assert block["transactions"][2]["raw_data"]["contract"][0]["type"] == "TransferContract"


def test_empty_block_and_non_positive_num(node: TronNode, client: Tron) -> None:
    # Given
    num = node.add_block()

    # When
    empty = _infos(client, num)
    zero = _infos(client, 0)

    # Then
    assert empty == []
    assert zero == {}
    assert client.provider.make_request("wallet/getblockbynum", {"num": "abc"})["Error"].startswith(
        "class java.lang.NumberFormatException"
    )


def test_transaction_info_by_id_is_base58_with_visible(node: TronNode, client: Tron) -> None:
    # Given
    recipient = _address()
    num = node.add_block([Trc20Transfer(USDT, _address(), recipient, 7)])
    txid = node.txids(num)[0]

    # When
    info = client.get_transaction_info(txid)
    tx = client.get_transaction(txid)

    # Then
    assert info["log"][0]["address"] == USDT
    assert info["contract_address"] == USDT
    assert tx["txID"] == txid
    assert client.provider.make_request("wallet/gettransactioninfobyid", {"value": "00" * 32}) == {}


def test_solidity_endpoints_refuse_blocks_above_the_solid_head(node: TronNode, client: Tron) -> None:
    # Given
    num = node.add_block([Trc20Transfer(USDT, _address(), _address(), 1)])
    txid = node.txids(num)[0]
    assert client.get_latest_solid_block_number() < num

    # When
    solid_view = _infos(client, num, solidity=True)
    full_view = _infos(client, num)

    # Then
    assert solid_view == []
    assert len(full_view) == 1
    with pytest.raises(TransactionNotFound):  # the node answered {}
        client.get_solid_transaction_info(txid)
    node.set_solid(num)
    assert len(_infos(client, num, solidity=True)) == 1
    assert client.get_solid_transaction_info(txid)["id"] == txid


def test_fail_next_429_fails_one_call(node: TronNode, client: Tron) -> None:
    # Given
    node.fail_next(1, 429)

    # When
    with pytest.raises(requests.HTTPError) as failure:
        client.get_latest_block_number()

    # Then
    assert failure.value.response is not None
    assert failure.value.response.status_code == 429
    assert "frequency limit" in failure.value.response.json()["Error"]
    assert client.get_latest_block_number() == node.head


def test_fail_next_timeout_drops_the_request(client: Tron) -> None:
    # Given
    with start_tron_node(hang_seconds=3) as slow:
        slow.fail_next(1, "timeout", path="/wallet/getnodeinfo")
        impatient = Tron(HTTPProvider(slow.url, timeout=0.5))

        # When
        with pytest.raises(requests.Timeout):
            impatient.get_latest_block_number()

        # Then
        assert impatient.get_latest_block_number() == 0


def test_reorg_replaces_block_ids(node: TronNode, client: Tron) -> None:
    # Given
    recipient = _address()
    num = node.add_block([Trc20Transfer(USDT, _address(), recipient, 9)])
    node.mine(2)
    old_id = client.get_block(num)["blockID"]
    old_txid = node.txids(num)[0]

    # When
    head = node.reorg(num, [[], [Trc20Transfer(USDT, _address(), recipient, 9)]])

    # Then
    new_block = client.get_block(num)
    assert head == num + 1
    assert new_block["blockID"] != old_id
    assert new_block["blockID"][:16] == old_id[:16]
    assert "transactions" not in new_block
    assert client.get_block(num + 1)["block_header"]["raw_data"]["parentHash"] == new_block["blockID"]
    assert _infos(client, num) == []
    assert client.provider.make_request("wallet/gettransactioninfobyid", {"value": old_txid}) == {}
    with pytest.raises(TransactionNotFound):
        client.get_transaction_info(old_txid)
    assert client.get_latest_block_number() == head
    with pytest.raises(ValueError, match="solidified"):
        node.reorg(node.solid, 1)


def test_get_and_post_are_both_accepted(node: TronNode) -> None:
    # Given
    num = node.add_block([Trc20Transfer(USDT, _address(), _address(), 3)])

    # When
    with urllib.request.urlopen(
        f"{node.url}/wallet/gettransactioninfobyblocknum?num={num}&visible=true", timeout=5
    ) as r:
        via_get = json.loads(r.read())
    via_post = _post(node, "/wallet/gettransactioninfobyblocknum", {"num": num, "visible": True})

    # Then
    assert via_get == via_post
    assert via_get[0]["log"][0]["address"] == USDT
    assert node.requests["/wallet/gettransactioninfobyblocknum"] == 2


def test_getnowblock_reads_visible_from_the_query_string_only(node: TronNode, client: Tron) -> None:
    # Given
    head = node.mine()

    # When
    from_body = client.get_latest_block()  # tronpy sends {"visible": true} in the body
    with urllib.request.urlopen(f"{node.url}/wallet/getnowblock?visible=true", timeout=5) as r:
        from_query = json.loads(r.read())

    # Then
    assert from_body["blockID"] == from_query["blockID"] == node.block_id(head)
    assert from_body["block_header"]["raw_data"]["witness_address"].startswith("41")
    assert from_query["block_header"]["raw_data"]["witness_address"].startswith("T")


def test_balances_follow_transfers_and_a_reorg_puts_them_back(node: TronNode, client: Tron) -> None:
    sender, recipient, stranger = _address(), _address(), _address()
    # Given a transfer of 5 USDT, and another of 2 on to a stranger in a later block
    node.add_block([Trc20Transfer(USDT, sender, recipient, 5_000_000)])
    later = node.add_block([Trc20Transfer(USDT, recipient, stranger, 2_000_000)])
    assert (node.balance(USDT, recipient), node.balance(USDT, stranger)) == (3_000_000, 2_000_000)
    # Then balanceOf, as tronpy's constant call reads it, answers the same
    answer = client.provider.make_request(
        "wallet/triggerconstantcontract",
        {
            "owner_address": recipient,
            "contract_address": USDT,
            "function_selector": "balanceOf(address)",
            "parameter": to_hex_address(recipient)[2:].rjust(64, "0"),
            "visible": True,
        },
    )
    assert answer["result"] == {"result": True} and int(answer["constant_result"][0], 16) == 3_000_000
    # When a reorg replaces the later block, Then the balances are as before it
    node.reorg(later, 1)
    assert (node.balance(USDT, recipient), node.balance(USDT, stranger)) == (5_000_000, 0)


def test_accounts_and_chain_parameters_read_as_tronpy_reads_them(node: TronNode, client: Tron) -> None:
    funded, unknown = _address(), _address()
    node.fund_trx(funded, 12_500_000)
    # A funded account has its balance in sun; one the chain does not know is `{}` (tronpy: not found)
    assert client.get_account_balance(funded) == Decimal("12.5")
    assert client.get_account(funded)["address"] == funded
    with pytest.raises(AddressNotFound):
        client.get_account(unknown)
    # And the energy price is the chain parameter getEnergyFee
    parameters = {p["key"]: p.get("value") for p in client.get_chain_parameters()}
    assert parameters["getEnergyFee"] == 100 and parameters["getTransactionFee"] == 1_000
