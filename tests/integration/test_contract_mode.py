"""Contract mode on anvil: a merchant's network switched to its DepositFactory only after the
chain shows the factory and implementation named, orders created with the CREATE2 address the
factory itself computes (offline, no RPC on the create path), paid and credited as any order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.contract import Contract

from devstack.evm import start_anvil
from devstack.settlement_contracts import deploy_deposit_implementation, deploy_factory
from tests.integration.apiclient import ApiClient
from tests.integration.chains import EvmChain, create, drive, evm_scanner, new_chain, status
from tests.integration.conftest import Merchant
from usdt_gateway import admin, contract_mode, create2, store
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.errors import InvalidRequest, NotFound
from usdt_gateway.merchant_records import ContractConfig
from usdt_gateway.settlement import candidates


@dataclass
class ContractChain:
    chain: EvmChain
    implementation: Contract
    factory: Contract
    treasury: str
    owner: str

    def rpc(self) -> JsonRpc:
        return JsonRpc(self.chain.anvil.url, timeout=10)

    def switch(self, merchant_id: str) -> dict[str, Any]:
        return contract_mode.configure_contract(
            merchant_id,
            self.chain.network,
            factory=self.factory.address,
            implementation=self.implementation.address,
            treasury=self.treasury,
            owner=self.owner,
            rpc=self.rpc(),
        )


def new_contract_chain(chain: EvmChain) -> ContractChain:
    w3, deployer = chain.w3, chain.owner
    implementation = deploy_deposit_implementation(w3, deployer)
    treasury, owner = Account.create().address, Account.create().address
    factory = deploy_factory(w3, deployer, treasury=treasury, owner=owner, implementation=implementation.address)
    return ContractChain(chain, implementation, factory, treasury, owner)


@pytest.fixture
def contracts(settings_env: pytest.MonkeyPatch) -> Iterator[ContractChain]:
    with start_anvil() as anvil:
        yield new_contract_chain(new_chain(anvil, settings_env))


def test_a_contract_mode_order_gets_the_factorys_create2_address_and_is_credited(
    api: ApiClient, merchant: Merchant, contracts: ContractChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the merchant's network switched to its factory
    contracts.switch(merchant.merchant_id)
    # When an order is created (with the chain unreachable from the create path)
    calls: list[str] = []
    monkeypatch.setattr(JsonRpc, "call", lambda self, method, params: calls.append(method))
    order = create(api, contracts.chain)
    monkeypatch.undo()
    # Then no RPC call was made, and its address is the one the factory computes for its salt
    assert calls == []
    salt = create2.order_salt(merchant.merchant_id, order["orderId"])
    assert order["address"] == contracts.factory.functions.deposit_address(salt).call()
    item = store.get(*store.order_key(merchant.merchant_id, order["orderId"]))
    assert item is not None and item["depositSalt"] == "0x" + salt.hex()
    assert item["depositFactory"] == contracts.factory.address
    # And paying it credits it as any order
    scanner = evm_scanner(contracts.chain.network, [contracts.chain.anvil.url])
    drive(scanner)
    txid = contracts.chain.pay(order["address"], "25.00")
    contracts.chain.mine(1)
    drive(scanner)
    done = status(api, order)
    assert done["status"] == "confirmed" and done["txid"] == txid
    # And its money is recorded as unsettled on its deposit address, in the credit's transaction
    assert done["funds"] == "on_deposit_address"
    (unsettled,) = candidates.unsettled(contracts.chain.network)
    assert (unsettled.address, unsettled.txid, unsettled.units, unsettled.salt) == (
        order["address"],
        txid,
        25_000_000,
        "0x" + salt.hex(),
    )
    assert unsettled.order_pk == store.order_key(merchant.merchant_id, order["orderId"])[0]
    # And a second order gets another address
    assert create(api, contracts.chain)["address"] != order["address"]


def test_the_other_networks_of_the_merchant_keep_their_mode(
    api: ApiClient, merchant: Merchant, contracts: ContractChain
) -> None:
    contracts.switch(merchant.merchant_id)
    # When an order is created on another EVM network of the same merchant
    order = api.create(network="bsc", amount="10.00")
    # Then it still gets an xpub address (no CREATE2 salt)
    assert order.status == 201
    item = store.get(*store.order_key(merchant.merchant_id, order.body["orderId"]))
    assert item is not None and "depositSalt" not in item and item["addressIndex"] == 0
    # And its view tells nothing about where money is (the merchant's own wallet)
    assert order.body["funds"] is None


def merchant_reads(calls: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    return [(name, pks) for name, pks in calls if any(pk.startswith("MERCHANT#") for pk in pks)]


@pytest.mark.parametrize("mode", ["contract", "xpub"])
def test_an_evm_create_reads_the_merchants_address_configs_in_one_call(
    api: ApiClient, merchant: Merchant, contracts: ContractChain, mode: str
) -> None:
    from usdt_gateway import aws

    # Given the merchant's network in contract mode, or left on its EVM xpub
    if mode == "contract":
        contracts.switch(merchant.merchant_id)
    calls: list[tuple[str, list[str]]] = []

    def record(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        if model.name == "GetItem":
            calls.append((model.name, [params["Key"]["pk"]["S"]]))
        elif model.name == "BatchGetItem":
            (request,) = params["RequestItems"].values()
            calls.append((model.name, [k["pk"]["S"] + "/" + k["sk"]["S"] for k in request["Keys"]]))

    client = aws.client("dynamodb")
    client.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        # When an order is created on that network
        order = create(api, contracts.chain)
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", record)
    # Then both configs (contract mode's and the family's) came in one BatchGetItem, nothing else
    pk = f"MERCHANT#{merchant.merchant_id}"
    assert merchant_reads(calls) == [
        ("BatchGetItem", [f"{pk}/CONTRACTCFG#{contracts.chain.network}", f"{pk}/ADDRCFG#evm"])
    ]
    assert ("depositSalt" in (store.get(*store.order_key(merchant.merchant_id, order["orderId"])) or {})) is (
        mode == "contract"
    )


@pytest.mark.parametrize("wrong", ["treasury", "owner", "implementation", "factory"])
def test_set_contract_refuses_what_the_chain_does_not_hold(
    merchant: Merchant, contracts: ContractChain, wrong: str
) -> None:
    # Given a configuration with one address that is not the factory's
    args = {
        "factory": contracts.factory.address,
        "implementation": contracts.implementation.address,
        "treasury": contracts.treasury,
        "owner": contracts.owner,
    }
    if wrong == "implementation":  # a second, genuine implementation: not the one the factory clones
        args[wrong] = deploy_deposit_implementation(contracts.chain.w3, contracts.chain.owner).address
    elif wrong == "factory":  # a contract that is no factory (the token)
        args[wrong] = contracts.chain.token.address
    else:
        args[wrong] = Account.create().address
    # When the network is switched
    with pytest.raises(InvalidRequest) as refused:
        contract_mode.configure_contract(
            merchant.merchant_id, contracts.chain.network, rpc=contracts.rpc(), tron_node=None, **args
        )
    # Then it is refused, and nothing is configured
    assert refused.value.code == "FACTORY_MISMATCH"
    assert store.get(*store.contract_config_key(merchant.merchant_id, contracts.chain.network)) is None


def test_admin_deploys_an_implementation_and_a_factory_that_set_contract_accepts(
    merchant: Merchant, contracts: ContractChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network, url = contracts.chain.network, contracts.chain.anvil.url
    key = Account.create()
    contracts.chain.anvil.rpc("anvil_setBalance", [key.address, hex(10**18)])
    key_file = tmp_path / "deployer.key"
    key_file.write_text(key.key.hex())
    sending = ["--rpc-url", url, "--key-file", str(key_file)]
    # Given the chain's Deposit implementation deployed from a funded key
    assert admin.main(["deploy-implementation", "--network", network, *sending]) == 0
    implementation = json.loads(capsys.readouterr().out)["contract"]
    common = ["--network", network, "--treasury", contracts.treasury, "--owner", contracts.owner]
    common += ["--implementation", implementation]
    # When no key is given: the factory's transaction is printed for the owner to send
    assert admin.main(["deploy-factory", *common]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sent"] is False and printed["transaction"]["to"] is None
    assert printed["transaction"]["chainId"] == 31337
    # When a funded key file is given
    assert admin.main(["deploy-factory", *common, *sending]) == 0
    output = capsys.readouterr()
    sent = json.loads(output.out)
    # Then it is sent from that key, the key itself appears nowhere in the output
    assert sent["status"] == "deployed" and sent["sender"] == key.address
    assert key.key.hex().removeprefix("0x") not in output.out + output.err
    # And set-contract accepts the deployed factory
    factory = Web3.to_checksum_address(sent["contract"])
    switch = ["set-contract", "--merchant", merchant.merchant_id, "--factory", factory, "--rpc-url", url]
    switch += common
    assert admin.main(switch) == 0
    configured = json.loads(capsys.readouterr().out)
    assert configured["mode"] == "contract" and configured["factory"] == factory


def test_the_operator_sets_the_reuse_of_deposit_contracts_per_network(
    merchant: Merchant, contracts: ContractChain, capsys: pytest.CaptureFixture[str]
) -> None:
    network = contracts.chain.network
    base = ["set-reuse", "--merchant", merchant.merchant_id, "--network", network]
    # Given a network not in contract mode: there is nothing to reuse
    with pytest.raises(NotFound):
        contract_mode.configure_reuse(merchant.merchant_id, network, reuse=True)
    # When it is switched, reuse is on with a 72-hour quarantine
    cfg = ContractConfig.from_item(contracts.switch(merchant.merchant_id))
    assert (cfg.reuse, cfg.reuse_quarantine_s) == (True, 72 * 3600)
    # When the operator turns it off, then sets a 24-hour quarantine (on again)
    assert admin.main([*base, "--off"]) == 0
    assert json.loads(capsys.readouterr().out)["reuse"] is False
    assert admin.main([*base, "--quarantine-hours", "24"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["reuse"], shown["reuseQuarantineSeconds"]) == (True, 86_400)
    # Then switching the network to a factory again keeps that setting
    assert contracts.switch(merchant.merchant_id)["reuseQuarantineSeconds"] == 86_400
    # And a quarantine beyond 30 days is refused
    with pytest.raises(InvalidRequest) as refused:
        contract_mode.configure_reuse(merchant.merchant_id, network, reuse=True, quarantine_s=31 * 86_400)
    assert refused.value.code == "INVALID_QUARANTINE"
