"""Contract mode on the local chain: the chain's Deposit implementation and the demo merchant's
DepositFactory deployed on anvil, its treasury and owner made at each start, the settlement
relayer's key created in the local KMS (moto) and its address funded, and the merchant's `local`
network switched to the factory by the code `admin set-contract` runs (its on-chain checks
included). The stack then runs the SettlementFunction every few seconds, which sweeps paid orders
to the treasury.

The contracts are deployed with the very transactions `admin deploy-implementation` and
`admin deploy-factory` print for an owner to send, sent here from anvil's first account
(unlocked). They go in before the stack mints its test USDT, so that the sandbox's `reorg`, which
never reaches the mint, cannot take them away either.

What the sandbox needs is written to the state dir, both new at each start as the chain is:
settlement.json, the public facts (factory, treasury, relayer, the local settlement settings),
and owner-key.json, the owner's private key, which alone can authorise refunds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from devstack.wallet import write_private

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

    from devstack.evm import Anvil

SETTLEMENT_FILE = "settlement.json"
OWNER_KEY_FILE = "owner-key.json"
# Native coin the relayer gets at start: sweeps cost well under 0.001 of it on anvil.
RELAYER_FUNDS_WEI = 100 * 10**18
RECEIPT_TIMEOUT_S = 30.0

# The demo merchant's `local` network: contract mode (CREATE2 deposit addresses swept to its
# treasury), or xpub mode (the dev wallet's addresses, nothing swept), as before contract mode.
LocalMode = Literal["contract", "xpub"]
LOCAL_MODES: tuple[LocalMode, ...] = ("contract", "xpub")


@dataclass(frozen=True)
class Contracts:
    """What start_local_chain deployed for contract mode."""

    implementation: str
    factory: str
    treasury: str
    owner: str
    owner_key: str = field(default="", repr=False)  # 0x hex; in owner-key.json only


@dataclass(frozen=True)
class SettlementInfo:
    """The facts of contract mode on the running stack that settlement.json holds."""

    network: str
    implementation: str
    factory: str
    treasury: str
    owner: str
    relayer: str
    relayer_key_id: str
    min_amount: str  # USDT: a merchant's unsettled money is swept once it reaches this ...
    max_age_seconds: int  # ... or once its oldest credit waited this long
    every_seconds: float  # the SettlementFunction's schedule, compressed
    confirmations: int  # the network's finality: a sweep is done once this deep
    # An address holding money its order did not take is swept once that money is this old
    refund_window_seconds: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "implementation": self.implementation,
            "factory": self.factory,
            "treasury": self.treasury,
            "owner": self.owner,
            "relayer": self.relayer,
            "relayerKeyId": self.relayer_key_id,
            "minAmount": self.min_amount,
            "maxAgeSeconds": self.max_age_seconds,
            "everySeconds": self.every_seconds,
            "confirmations": self.confirmations,
            "refundWindowSeconds": self.refund_window_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SettlementInfo:
        return cls(
            network=str(data["network"]),
            implementation=str(data["implementation"]),
            factory=str(data["factory"]),
            treasury=str(data["treasury"]),
            owner=str(data["owner"]),
            relayer=str(data["relayer"]),
            relayer_key_id=str(data["relayerKeyId"]),
            min_amount=str(data["minAmount"]),
            max_age_seconds=int(data["maxAgeSeconds"]),
            every_seconds=float(data["everySeconds"]),
            confirmations=int(data["confirmations"]),
            refund_window_seconds=int(data.get("refundWindowSeconds") or 0),
        )


def create_relayer_key(kms: KMSClient, description: str) -> tuple[str, str, str]:
    """(key id, ARN, EVM address) of a new relayer key, of the template's RelayerKey kind."""
    from usdt_gateway.kms_signer import KmsSigner

    key = kms.create_key(Description=description, KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    return key["KeyId"], key["Arn"], KmsSigner(key["KeyId"], client=kms).address


def _send(anvil: Anvil, transaction: dict[str, Any]) -> dict[str, Any]:
    """eth_sendTransaction from an unlocked account; its receipt once mined (at once while
    automine is on, as during the chain's set-up, though the receipt can lag the answer)."""
    tx_hash = anvil.rpc("eth_sendTransaction", [transaction])
    deadline = time.monotonic() + RECEIPT_TIMEOUT_S
    while (receipt := anvil.rpc("eth_getTransactionReceipt", [tx_hash])) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"set-up transaction {tx_hash} was not mined within {RECEIPT_TIMEOUT_S:g} s")
        time.sleep(0.02)
    if int(receipt["status"], 16) != 1:
        raise RuntimeError(f"set-up transaction {tx_hash} reverted")
    return dict(receipt)


def deploy(anvil: Anvil, sender: str, *, relayer: str, chain_id: int) -> Contracts:
    """Deploy the Deposit implementation and a factory for a new treasury and owner (their keys
    made now), and send the relayer its gas money, all from `sender`."""
    from eth_account import Account

    from usdt_gateway import contract_mode
    from usdt_gateway.address_codec import to_checksum_address

    def created(deployment: dict[str, Any]) -> str:
        receipt = _send(anvil, {"from": sender, "data": deployment["data"]})
        return to_checksum_address(receipt["contractAddress"])

    implementation = created(contract_mode.implementation_deployment(chain_id=chain_id))
    # The treasury only receives: its key is not kept. The owner signs refunds: its key is.
    treasury, owner = Account.create().address, Account.create()
    factory = created(
        contract_mode.factory_deployment(
            chain_id=chain_id, treasury=treasury, owner=owner.address, implementation=implementation
        )
    )
    _send(anvil, {"from": sender, "to": relayer, "value": hex(RELAYER_FUNDS_WEI)})
    return Contracts(implementation, factory, str(treasury), str(owner.address), "0x" + bytes(owner.key).hex())


def switch(merchant_id: str, network: str, contracts: Contracts, rpc_url: str) -> dict[str, Any]:
    """The merchant's network to contract mode under the factory: `admin set-contract`'s code."""
    from usdt_gateway import contract_mode
    from usdt_gateway.chain.jsonrpc import JsonRpc

    return contract_mode.configure_contract(
        merchant_id,
        network,
        factory=contracts.factory,
        implementation=contracts.implementation,
        treasury=contracts.treasury,
        owner=contracts.owner,
        rpc=JsonRpc(rpc_url, timeout=30),
    )


def write_state(state_dir: Path, info: SettlementInfo | None, contracts: Contracts | None) -> None:
    """settlement.json and owner-key.json for contract mode; in xpub mode, neither (a previous
    start's would describe a chain that is gone)."""
    if info is None or contracts is None:
        for name in (SETTLEMENT_FILE, OWNER_KEY_FILE):
            (state_dir / name).unlink(missing_ok=True)
        return
    write_private(state_dir / SETTLEMENT_FILE, info.to_json())
    write_private(
        state_dir / OWNER_KEY_FILE,
        {
            "warning": "The demo merchant's factory owner on the local chain only. It alone can authorise refunds.",
            "factory": contracts.factory,
            "address": contracts.owner,
            "privateKey": contracts.owner_key,
        },
    )


def read_settlement_info(state_dir: Path) -> SettlementInfo | None:
    """The settlement.json a running stack in contract mode wrote; None when there is none."""
    try:
        return SettlementInfo.from_json(json.loads((state_dir / SETTLEMENT_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
