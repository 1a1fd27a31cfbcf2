"""`admin set-contract`, `deploy-implementation` and `deploy-factory` on a Tron network, against the
fake full node. No TVM runs here: the node holds the committed Tron builds at the same 20-byte
addresses as on anvil, where the same builds are deployed, and answers triggerconstantcontract
with anvil's eth_call; so the factory's views are the contract's own code (with its 0x41 CREATE2
prefix), and getcontract returns the bytecode that was deployed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from devstack.evm import start_anvil
from devstack.settlement_contracts import deploy_tron_build, tron_artifact
from devstack.tron_node import FakeContract, TronNode, start_tron_node
from tests.integration.conftest import Merchant
from usdt_gateway import admin, contract_mode, store, tron_energy_status
from usdt_gateway.address_codec import tron_address_from_body, tron_body20
from usdt_gateway.chain.readers import TronNode as TronClient
from usdt_gateway.errors import InvalidRequest
from usdt_gateway.tron_contract_mode import constructor_arguments

NILE_CHAIN_ID = 3_448_148_188


def _tron(evm_address: str) -> str:
    return tron_address_from_body(bytes.fromhex(evm_address[2:]))


@dataclass
class TronContracts:
    node: TronNode
    implementation: str
    factory: str
    treasury: str
    owner: str

    def args(self, **changed: str) -> dict[str, str]:
        named = {"factory": self.factory, "implementation": self.implementation}
        named |= {"treasury": self.treasury, "owner": self.owner}
        return named | changed


def _hold(node: TronNode, w3: Web3, address: str, name: str, bytecode: str) -> None:
    """The node holds the anvil contract at `address` under its Tron address."""

    def call(data: bytes) -> bytes:
        return bytes(w3.eth.call({"to": Web3.to_checksum_address(address), "data": data}))

    runtime = bytes(w3.eth.get_code(Web3.to_checksum_address(address))).hex()
    origin = "41" + "11" * 20
    node.add_contract(FakeContract("41" + address[2:].lower(), origin, bytecode, runtime, name, call))


def _deploy(node: TronNode, w3: Web3) -> TronContracts:
    sender = w3.eth.accounts[0]
    treasury, owner = _tron(Account.create().address), _tron(Account.create().address)
    impl = deploy_tron_build(w3, sender, "Deposit")
    implementation = _tron(impl.address)
    factory = deploy_tron_build(
        w3,
        sender,
        "DepositFactory",
        *(Web3.to_checksum_address(tron_body20(a)) for a in (treasury, owner, implementation)),
    )
    _hold(node, w3, impl.address, "Deposit", tron_artifact("Deposit")["bytecode"].removeprefix("0x"))
    args = constructor_arguments(treasury, owner, implementation)
    bytecode = tron_artifact("DepositFactory")["bytecode"].removeprefix("0x") + args
    _hold(node, w3, factory.address, "DepositFactory", bytecode)
    return TronContracts(node, implementation, _tron(factory.address), treasury, owner)


@pytest.fixture
def anvil_w3() -> Iterator[Web3]:
    with start_anvil() as anvil:
        yield anvil.web3()


@pytest.fixture
def tron(anvil_w3: Web3) -> Iterator[TronContracts]:
    with start_tron_node(blocks=3) as node:
        yield _deploy(node, anvil_w3)


def _configure(merchant: Merchant, contracts: TronContracts, **changed: str) -> dict[str, Any]:
    client = TronClient(contracts.node.url, timeout=5)
    return contract_mode.configure_contract(
        merchant.merchant_id, "tron", rpc=None, tron_node=client, **contracts.args(**changed)
    )


def test_set_contract_checks_the_tron_factory_and_stores_base58_addresses(
    merchant: Merchant, tron: TronContracts, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the operator switches the merchant's Tron network to the factory
    argv = ["set-contract", "--merchant", merchant.merchant_id, "--network", "tron", "--rpc-url", tron.node.url]
    for name, value in tron.args().items():
        argv += [f"--{name}", value]
    assert admin.main(argv) == 0
    configured = json.loads(capsys.readouterr().out)
    # Then the configuration is stored with base58check addresses
    assert configured["mode"] == "contract" and configured["network"] == "tron"
    assert {k: configured[k] for k in ("factory", "implementation", "treasury", "owner")} == tron.args()
    assert configured["factory"].startswith("T")
    # and the factory's own views and code were read from the node
    for path in ("/wallet/getcontract", "/wallet/getcontractinfo", "/wallet/triggerconstantcontract"):
        assert tron.node.requests[path] > 0


@pytest.mark.parametrize("wrong", ["treasury", "owner", "implementation", "factory"])
def test_set_contract_refuses_a_tron_factory_that_is_not_the_one_named(
    merchant: Merchant, tron: TronContracts, anvil_w3: Web3, wrong: str
) -> None:
    # Given one address that is not the factory's
    if wrong == "implementation":  # a second, genuine Tron implementation: not the one the factory clones
        other = deploy_tron_build(anvil_w3, anvil_w3.eth.accounts[0], "Deposit")
        _hold(tron.node, anvil_w3, other.address, "Deposit", tron_artifact("Deposit")["bytecode"].removeprefix("0x"))
        value = _tron(other.address)
    elif wrong == "factory":  # the implementation is a contract, but no factory
        value = tron.implementation
    else:
        value = _tron(Account.create().address)
    # When the network is switched, Then it is refused and nothing is stored
    with pytest.raises(InvalidRequest) as refused:
        _configure(merchant, tron, **{wrong: value})
    assert refused.value.code == "FACTORY_MISMATCH"
    assert store.get(*store.contract_config_key(merchant.merchant_id, "tron")) is None


def test_set_contract_refuses_a_node_of_another_tron_chain(merchant: Merchant, anvil_w3: Web3) -> None:
    # Given the factory on a node that serves Nile (its genesis block id ends in Nile's chain id)
    with start_tron_node(blocks=1, chain_id=NILE_CHAIN_ID) as node:
        contracts = _deploy(node, anvil_w3)
        # When the mainnet network is switched through it, Then it is refused
        with pytest.raises(InvalidRequest, match="serves chain 3448148188") as refused:
            _configure(merchant, contracts)
    assert refused.value.code == "FACTORY_MISMATCH"


def test_set_contract_refuses_a_view_that_disagrees_with_the_offline_address(
    merchant: Merchant, tron: TronContracts
) -> None:
    # Given a node whose factory answers deposit_address with another address
    held = tron.node.chain.contracts["41" + tron_body20(tron.factory).hex()]
    genuine = held.call
    assert genuine is not None

    def lying(data: bytes) -> bytes:
        answer = genuine(data)
        return answer[:-1] + bytes([answer[-1] ^ 1]) if data[:4].hex() == "86caeead" else answer

    held.call = lying
    # Then set-contract refuses it
    with pytest.raises(InvalidRequest, match="deposit address") as refused:
        _configure(merchant, tron)
    assert refused.value.code == "FACTORY_MISMATCH"


def test_deploy_commands_print_the_tron_create_smart_contract_with_its_fee_limit(
    tron: TronContracts, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the operator asks for the Tron deployments
    assert admin.main(["deploy-implementation", "--network", "tron"]) == 0
    implementation = json.loads(capsys.readouterr().out)
    factory_argv = ["deploy-factory", "--network", "tron", "--fee-limit-sun", "300000000"]
    factory_argv += ["--treasury", tron.treasury, "--owner", tron.owner, "--implementation", tron.implementation]
    assert admin.main(factory_argv) == 0
    factory = json.loads(capsys.readouterr().out)
    # Then each is an unsigned CreateSmartContract with its fee limit, for the owner to send
    assert implementation["sent"] is False and implementation["chainId"] == 728126428
    body = implementation["createSmartContract"]
    assert body["fee_limit"] == 1_000_000_000 and body["parameter"] == "" and body["call_value"] == 0
    made = factory["createSmartContract"]
    assert made["fee_limit"] == 300_000_000 and made["consume_user_resource_percent"] == 100
    # and the factory's bytecode and parameter are what set-contract accepts from getcontract
    held = tron.node.chain.contracts["41" + tron_body20(tron.factory).hex()]
    assert made["bytecode"] + made["parameter"] == held.bytecode
    # And a fee limit above the chain's ceiling is refused
    assert admin.main([*factory_argv[:3], "--fee-limit-sun", str(15_000_000_001), *factory_argv[5:]]) == 2


def test_the_energy_mode_is_checked_at_cold_start_and_shown_with_the_relayers_resources(
    settings_env: pytest.MonkeyPatch,
) -> None:
    from usdt_gateway import config, tron_energy

    # Given the default, Then every Tron network burns TRX with a 100 TRX fee limit
    enabled = config.networks()
    assert tron_energy.load(enabled, {})["tron"] == tron_energy.EnergySetting("burn", 100_000_000)
    # Given staked energy on the mainnet network and a fee limit of 50 TRX
    env = {"TRON_ENERGY_MODE": "tron=staked", "TRON_FEE_LIMIT_SUN": "50000000"}
    setting = tron_energy.load(enabled, env)["tron"]
    assert setting == tron_energy.EnergySetting("staked", 50_000_000)
    # When the status is read for a relayer with staked energy, Then it shows what is left
    relayer = _tron(Account.create().address)
    with start_tron_node(blocks=1) as node:
        node.stake(relayer, energy=130_000, bandwidth=1_000)
        shown = tron_energy_status.status(
            enabled["tron"], setting, address=relayer, node=TronClient(node.url, timeout=5)
        )
    assert shown["energy"] == {"mode": "staked", "feeLimitSun": 50_000_000}
    resources = shown["relayer"]["resources"]
    assert resources["energyAvailable"] == 130_000 and resources["bandwidthAvailable"] == 1_600
    # And a malformed setting stops the cold start
    for bad in ({"TRON_ENERGY_MODE": "rent"}, {"TRON_ENERGY_MODE": "eth=staked"}, {"TRON_FEE_LIMIT_SUN": "0"}):
        for name, value in bad.items():
            settings_env.setenv(name, value)
        config.reset()
        with pytest.raises(config.ConfigError, match="TRON_"):
            config.networks()
        for name in bad:
            settings_env.delenv(name)
