"""The fake Tron full node's accounts (devstack/tron_node.py, TronAccounts): TRX transfers, Stake
2.0 delegation and TRC-20 balances over java-tron's HTTP API, in the shapes its documentation gives
(tronprotocol/documentation-en docs/api/http/, cited in the module), with java-tron's fees:
activation, bandwidth (staked, free, burned), energy (delegated, burned within the fee limit, out
of energy). Transactions are signed here with tronpy's keys, as any wallet would."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tronpy.keys import PrivateKey

from devstack.tron_node import (
    CREATE_ACCOUNT_FEE,
    CREATE_NEW_ACCOUNT_FEE,
    USDT_ENERGY_TO_HOLDER,
    USDT_ENERGY_TO_NEW_HOLDER,
    TronAccounts,
    TronNode,
    _hex41,
    start_tron_node,
    tx_bandwidth,
)

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
TRX = 1_000_000


@pytest.fixture
def node() -> Iterator[TronNode]:
    with start_tron_node(blocks=3, solid_lag=1) as running:
        TronAccounts.of(running).add_token(USDT)
        yield running


def post(node: TronNode, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{node.url}/{path}", json.dumps(body or {}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def key() -> tuple[PrivateKey, str]:
    private = PrivateKey.random()
    return private, str(private.public_key.to_base58check_address())


def send(node: TronNode, private: PrivateKey, tx: dict[str, Any]) -> Any:
    """Sign the node's transaction (sha256 of raw_data_hex) and broadcast it."""
    signature = private.sign_msg_hash(hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).digest()).hex()
    return post(node, "wallet/broadcasttransaction", tx | {"signature": [signature]})


def info(node: TronNode, txid: str) -> Any:
    return post(node, "wallet/gettransactioninfobyid", {"value": txid})


def test_a_trx_transfer_creating_an_account_costs_the_documented_fees(node: TronNode) -> None:
    # Given a funded account and an address the chain does not know
    accounts = TronAccounts.of(node)
    sender_key, sender = key()
    _, receiver = key()
    accounts.create(sender, 10 * TRX)
    assert post(node, "wallet/getaccount", {"address": _hex41(receiver)}) == {}

    # When it sends 2 TRX there
    tx = post(
        node,
        "wallet/createtransaction",
        {"owner_address": _hex41(sender), "to_address": _hex41(receiver), "amount": 2 * TRX},
    )
    answer = send(node, sender_key, tx)
    node.mine()

    # Then the transaction has createtransaction's documented shape, and costs 1 TRX for the new
    # account plus 0.1 TRX of bandwidth (no staked bandwidth)
    assert set(tx) == {"visible", "txID", "raw_data", "raw_data_hex"}
    assert tx["txID"] == hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest()
    assert tx["raw_data"]["contract"] == [
        {
            "parameter": {
                "value": {"amount": 2 * TRX, "owner_address": _hex41(sender), "to_address": _hex41(receiver)},
                "type_url": "type.googleapis.com/protocol.TransferContract",
            },
            "type": "TransferContract",
        }
    ]
    assert answer == {"result": True, "txid": tx["txID"]}
    assert info(node, tx["txID"]) == {
        "id": tx["txID"],
        "fee": CREATE_NEW_ACCOUNT_FEE + CREATE_ACCOUNT_FEE,
        "blockNumber": node.head,
        "blockTimeStamp": node.chain.blocks[-1].timestamp,
        "contractResult": [""],
        "receipt": {"net_fee": CREATE_ACCOUNT_FEE},
    }
    assert accounts.trx(sender) == 10 * TRX - 2 * TRX - CREATE_NEW_ACCOUNT_FEE - CREATE_ACCOUNT_FEE
    assert post(node, "wallet/getaccount", {"address": _hex41(receiver)})["balance"] == 2 * TRX
    # And blocks show it as a TransferContract, in base58 with visible
    block = post(node, "wallet/getblockbynum", {"num": node.head, "visible": True})
    value = block["transactions"][0]["raw_data"]["contract"][0]["parameter"]["value"]
    assert value == {"amount": 2 * TRX, "owner_address": sender, "to_address": receiver}


def test_delegation_lends_energy_and_undelegation_takes_it_back_with_its_use(node: TronNode) -> None:
    # Given an account staked for energy, and an activated receiver
    accounts = TronAccounts.of(node)
    owner_key, owner = key()
    _, receiver = key()
    accounts.stake(owner, energy_sun=5_000 * TRX)
    accounts.create(receiver)
    before = post(node, "wallet/getcandelegatedmaxsize", {"owner_address": _hex41(owner), "type": 1})
    assert before == {"max_size": 5_000 * TRX}
    assert post(node, "wallet/getcandelegatedmaxsize", {"owner_address": _hex41(owner), "type": 0}) == {}

    # When it delegates 2,000 TRX of energy
    body = {"owner_address": _hex41(owner), "receiver_address": _hex41(receiver), "balance": 2_000 * TRX}
    tx = post(node, "wallet/delegateresource", body | {"resource": "ENERGY", "lock": False})
    assert send(node, owner_key, tx)["result"] is True
    node.mine()

    # Then the contract is DelegateResourceContract (lock false left out), and the receiver has the energy
    assert tx["raw_data"]["contract"][0]["parameter"]["value"] == body | {"resource": "ENERGY"}
    receiver_res = post(node, "wallet/getaccountresource", {"address": _hex41(receiver)})
    assert receiver_res["EnergyLimit"] == int(2_000 * (180_000_000_000 / 2_411_528_185))
    assert post(node, "wallet/getcandelegatedmaxsize", {"owner_address": _hex41(owner), "type": 1}) == {
        "max_size": 3_000 * TRX
    }
    assert post(node, "wallet/getaccount", {"address": _hex41(owner)})["account_resource"] == {
        "delegated_frozenV2_balance_for_energy": 2_000 * TRX
    }

    # When the receiver uses some of it, and the owner takes the delegation back
    accounts.holders[_hex41(receiver)].energy_used = 50_000
    undo = post(node, "wallet/undelegateresource", body | {"resource": "ENERGY"})
    assert send(node, owner_key, undo)["result"] is True
    node.mine()

    # Then the energy and its use went back to the owner
    assert "EnergyLimit" not in post(node, "wallet/getaccountresource", {"address": _hex41(receiver)})
    assert accounts.holders[_hex41(owner)].energy_used == 50_000
    assert accounts.delegated(owner=owner) == {}
    # And undelegating again is refused as java-tron refuses it
    refused = post(node, "wallet/undelegateresource", body | {"resource": "ENERGY"})
    assert refused == {
        "Error": "class org.tron.core.exception.ContractValidateException : delegated Resource does not exist"
    }


def test_delegation_refusals_and_bandwidth_left_out_as_the_default(node: TronNode) -> None:
    accounts = TronAccounts.of(node)
    _, owner = key()
    _, receiver = key()
    accounts.stake(owner, bandwidth_sun=100 * TRX)
    body = {"owner_address": _hex41(owner), "receiver_address": _hex41(receiver)}
    prefix = "class org.tron.core.exception.ContractValidateException : "
    # A receiver that does not exist, too little, too much
    assert post(node, "wallet/delegateresource", body | {"balance": TRX}) == {
        "Error": f"{prefix}Account[{_hex41(receiver)}] not exists"
    }
    accounts.create(receiver)
    assert post(node, "wallet/delegateresource", body | {"balance": TRX - 1}) == {
        "Error": f"{prefix}delegateBalance must be greater than or equal to 1 TRX"
    }
    assert post(node, "wallet/delegateresource", body | {"balance": 101 * TRX}) == {
        "Error": f"{prefix}delegateBalance must be less than or equal to available FreezeBandwidthV2 balance"
    }
    # BANDWIDTH is the enum's default: protobuf-JSON leaves it out of the contract
    tx = post(node, "wallet/delegateresource", body | {"balance": TRX, "resource": "BANDWIDTH"})
    assert tx["raw_data"]["contract"][0]["parameter"]["value"] == body | {"balance": TRX}
    assert tx["raw_data"]["contract"][0]["type"] == "DelegateResourceContract"


def test_a_token_transfer_pays_energy_from_delegation_or_trx_and_runs_out_without(node: TronNode) -> None:
    # Given two holders of USDT: one with TRX for fees, one with nothing but its free bandwidth
    accounts = TronAccounts.of(node)
    rich_key, rich = key()
    poor_key, poor = key()
    _, treasury = key()
    for holder in (rich, poor):
        accounts.create(holder, 20 * TRX if holder == rich else 0)
        accounts.mint(USDT, holder, 5 * TRX)
    node.mine(2)

    def transfer(private: PrivateKey, owner: str, units: int, fee_limit: int) -> Any:
        data = "a9059cbb" + "00" * 12 + _hex41(treasury)[2:] + f"{units:064x}"
        body = {"owner_address": _hex41(owner), "contract_address": _hex41(USDT), "data": data}
        estimate = post(node, "wallet/triggerconstantcontract", body)
        built = post(node, "wallet/triggersmartcontract", body | {"fee_limit": fee_limit})["transaction"]
        assert send(node, private, built)["result"] is True
        node.mine()
        return estimate, info(node, built["txID"])

    # When the rich one sends to a new holder
    estimate, paid = transfer(rich_key, rich, 2 * TRX, 100 * TRX)

    # Then the estimate and the receipt say the new-holder energy, burned at 100 sun, with the
    # free bandwidth; the balances moved and the token's Transfer log is there
    assert estimate["energy_used"] == USDT_ENERGY_TO_NEW_HOLDER
    size = paid["receipt"]["net_usage"]
    assert paid["receipt"] == {
        "energy_fee": USDT_ENERGY_TO_NEW_HOLDER * 100,
        "energy_usage_total": USDT_ENERGY_TO_NEW_HOLDER,
        "net_usage": size,
        "result": "SUCCESS",
    }
    assert paid["fee"] == USDT_ENERGY_TO_NEW_HOLDER * 100 and paid["contractResult"] == ["00" * 32]
    assert paid["log"][0]["address"] == _hex41(USDT)[2:] and paid["log"][0]["data"] == f"{2 * TRX:064x}"
    assert accounts.token_balance(USDT, treasury) == 2 * TRX
    # The balance at the solidified block is the one before it, until it is solidified
    solid = post(
        node,
        "walletsolidity/triggerconstantcontract",
        {
            "owner_address": _hex41(treasury),
            "contract_address": _hex41(USDT),
            "data": "70a08231" + "00" * 12 + _hex41(treasury)[2:],
        },
    )
    assert int(solid["constant_result"][0], 16) == 0
    node.mine()
    assert accounts.token_balance(USDT, treasury, node.solid) == 2 * TRX

    # When the poor one sends with no energy and no TRX
    _, failed = transfer(poor_key, poor, TRX, 100 * TRX)

    # Then it runs out of energy at once, moves nothing, and its free bandwidth paid the bytes
    assert failed["receipt"] == {"net_usage": size, "result": "OUT_OF_ENERGY"}
    assert failed["result"] == "FAILED" and "log" not in failed
    assert accounts.token_balance(USDT, poor) == 5 * TRX

    # And a second transfer the same day finds its free bandwidth used up, and no TRX to burn
    refused = send(
        node,
        poor_key,
        post(
            node,
            "wallet/triggersmartcontract",
            {
                "owner_address": _hex41(poor),
                "contract_address": _hex41(USDT),
                "fee_limit": TRX,
                "data": "a9059cbb" + "00" * 12 + _hex41(treasury)[2:] + f"{1:064x}",
            },
        )["transaction"],
    )
    assert refused["code"] == "BANDWITH_ERROR"

    # When, a day later (its free bandwidth back), it is lent the energy (to a holder now: the cheaper figure)
    accounts.use_free_bandwidth(poor, 0)
    owner_key, owner = key()
    accounts.stake(owner, energy_sun=1_000 * TRX)
    body = {"owner_address": _hex41(owner), "receiver_address": _hex41(poor), "balance": 1_000 * TRX}
    assert send(node, owner_key, post(node, "wallet/delegateresource", body | {"resource": "ENERGY"}))["result"]
    node.mine()
    _, lent = transfer(poor_key, poor, TRX, USDT_ENERGY_TO_HOLDER * 100)

    # Then the delegated energy paid it all
    assert lent["receipt"]["energy_usage"] == lent["receipt"]["energy_usage_total"] == USDT_ENERGY_TO_HOLDER
    assert "energy_fee" not in lent["receipt"] and lent["receipt"]["result"] == "SUCCESS"
    assert accounts.token_balance(USDT, treasury) == 3 * TRX
    assert tx_bandwidth(post(node, "wallet/gettransactionbyid", {"value": lent["id"]})["raw_data_hex"]) == size


def test_chain_parameters_and_unknown_accounts(node: TronNode) -> None:
    parameters = post(node, "wallet/getchainparameters")["chainParameter"]
    by_key = {p["key"]: p.get("value", 0) for p in parameters}
    assert by_key["getEnergyFee"] == 100 and by_key["getTransactionFee"] == 1_000
    assert by_key["getCreateAccountFee"] == CREATE_ACCOUNT_FEE
    assert by_key["getCreateNewAccountFeeInSystemContract"] == CREATE_NEW_ACCOUNT_FEE
    assert {"key": "getAllowAdaptiveEnergy"} in parameters  # a zero value has no "value"
    _, nobody = key()
    assert post(node, "wallet/getaccount", {"address": _hex41(nobody)}) == {}
    assert post(node, "wallet/getaccountresource", {"address": _hex41(nobody)}) == {}
    _, owner = key()
    refused = post(
        node, "wallet/createtransaction", {"owner_address": _hex41(owner), "to_address": _hex41(nobody), "amount": 1}
    )
    prefix = "class org.tron.core.exception.ContractValidateException : "
    assert refused == {"Error": f"{prefix}Validate TransferContract error, no OwnerAccount."}
