"""Contract mode, the operator's side: check a merchant's DepositFactory on chain and switch one of
the merchant's networks to it (`admin set-contract`), and build the factory's deployment
(`admin deploy-factory`).

Before a network is switched, the factory and the chain's Deposit implementation are read from
the chain and must be exactly what the gateway computes its deposit addresses for:
- the implementation's code is the released Deposit contract: its runtime code without the one
  immutable Vyper appends (32 bytes) hashes to DEPOSIT_TEMPLATE_HASH, and that immutable is the
  init code hash of its own clones;
- the factory's code is the released DepositFactory (FACTORY_TEMPLATE_HASH, four immutables
  appended), and its immutables are the treasury, owner and implementation given, and the clone
  init code hash of that implementation;
- the factory's own `deposit_address(salt)` equals the offline CREATE2 computation.
A factory that passes can only ever pay its treasury, and every order's address is one it can
sweep. Both hashes change only with the contracts' source (contracts/build/*.json), and the
integration tests deploy the committed artifacts and check them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from usdt_gateway import clock, create2, merchants, store
from usdt_gateway.address_codec import keccak256, normalize_evm_address, to_checksum_address
from usdt_gateway.chain.jsonrpc import Rpc, RpcError
from usdt_gateway.chain.tron import Provider
from usdt_gateway.config import networks
from usdt_gateway.errors import InvalidRequest, NotFound
from usdt_gateway.kms_signer import Eip1559Transaction
from usdt_gateway.merchant_records import MAX_REUSE_QUARANTINE_S, ContractConfig

DEPOSIT_TEMPLATE_HASH = bytes.fromhex("b7b717670b4196e7e1139af548947e5425247d9e5fa6df7ff47b0ec137eedfc0")
FACTORY_TEMPLATE_HASH = bytes.fromhex("f0278f7795f65b4c68b00d59599da4c51047b02d50d1a49eadd469b880a44f7c")
_DEPOSIT_IMMUTABLES = 32  # CLONE_INIT_CODE_HASH
_FACTORY_IMMUTABLES = 4 * 32  # TREASURY, OWNER, DEPOSIT_IMPLEMENTATION, DEPOSIT_INIT_CODE_HASH
# The released artifacts `deploy-implementation` and `deploy-factory` deploy, where a checkout of
# the repository has them.
ARTIFACTS = Path(__file__).resolve().parents[3] / "contracts" / "build"
FACTORY_ARTIFACT = ARTIFACTS / "DepositFactory.json"
DEPOSIT_ARTIFACT = ARTIFACTS / "Deposit.json"
# A salt no order can have (orders' salts are keccak of a tagged string), to compare addresses with.
_PROBE_SALT = b"\x00" * 31 + b"\x01"


class FactoryMismatch(InvalidRequest):
    """The chain does not hold the factory (or implementation) the gateway would compute for."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="FACTORY_MISMATCH")


def _selector(signature: str) -> str:
    return "0x" + keccak256(signature.encode()).hex()[:8]


def _address(value: str, what: str) -> str:
    try:
        return normalize_evm_address(value)
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {exc}", code="INVALID_ADDRESS") from exc


def _code(rpc: Rpc, address: str) -> bytes:
    return bytes.fromhex(str(rpc.call("eth_getCode", [address, "latest"])).removeprefix("0x"))


def _word(rpc: Rpc, to: str, data: str) -> bytes:
    answer = bytes.fromhex(str(rpc.call("eth_call", [{"to": to, "data": data}, "latest"])).removeprefix("0x"))
    if len(answer) != 32:
        raise FactoryMismatch(f"{to} answered {len(answer)} bytes to {data[:10]}, not one word")
    return answer


def _word_address(word: bytes) -> str:
    return to_checksum_address(word[12:])


@dataclass(frozen=True)
class FactoryFacts:
    """What the chain says about a factory."""

    treasury: str
    owner: str
    implementation: str
    init_code_hash: bytes


def read_factory(rpc: Rpc, factory: str) -> FactoryFacts:
    """The factory's immutables, read with eth_call, after checking its code is the released one."""
    code = _code(rpc, factory)
    if len(code) <= _FACTORY_IMMUTABLES or keccak256(code[:-_FACTORY_IMMUTABLES]) != FACTORY_TEMPLATE_HASH:
        raise FactoryMismatch(f"{factory} holds no released DepositFactory (its code is not the expected one)")
    return FactoryFacts(
        treasury=_word_address(_word(rpc, factory, _selector("TREASURY()"))),
        owner=_word_address(_word(rpc, factory, _selector("OWNER()"))),
        implementation=_word_address(_word(rpc, factory, _selector("DEPOSIT_IMPLEMENTATION()"))),
        init_code_hash=_word(rpc, factory, _selector("DEPOSIT_INIT_CODE_HASH()")),
    )


def verify(rpc: Rpc, cfg: ContractConfig) -> None:
    """FactoryMismatch unless the chain holds exactly the factory and implementation `cfg` names."""
    impl_code = _code(rpc, cfg.implementation)
    clone_hash = keccak256(create2.clone_init_code(cfg.implementation))
    if (
        len(impl_code) <= _DEPOSIT_IMMUTABLES
        or keccak256(impl_code[:-_DEPOSIT_IMMUTABLES]) != DEPOSIT_TEMPLATE_HASH
        or impl_code[-_DEPOSIT_IMMUTABLES:] != clone_hash
    ):
        raise FactoryMismatch(f"{cfg.implementation} holds no released Deposit contract (its code hash differs)")
    facts = read_factory(rpc, cfg.factory)
    expected = FactoryFacts(cfg.treasury, cfg.owner, cfg.implementation, clone_hash)
    for name in ("treasury", "owner", "implementation", "init_code_hash"):
        have, want = getattr(facts, name), getattr(expected, name)
        if have != want:
            shown = (have.hex(), want.hex()) if isinstance(have, bytes) else (have, want)
            raise FactoryMismatch(f"the factory's {name} is {shown[0]}, expected {shown[1]}")
    salt_word = "0x" + _PROBE_SALT.hex()
    on_chain = _word_address(_word(rpc, cfg.factory, _selector("deposit_address(bytes32)") + salt_word[2:]))
    offline = to_checksum_address(create2.deposit_address(cfg.factory, cfg.implementation, _PROBE_SALT))
    if on_chain != offline:
        raise FactoryMismatch(f"the factory computes deposit address {on_chain}, the gateway {offline}")


def configure_contract(
    merchant_id: str,
    network: str,
    *,
    factory: str,
    implementation: str,
    treasury: str,
    owner: str,
    rpc: Rpc | None = None,
    tron_node: Provider | None = None,
) -> dict[str, Any]:
    """Switch the merchant's `network` to contract mode, once the chain holds what is named
    (through `rpc` on an EVM network, the full node `tron_node` on Tron).
    Orders created from then on get CREATE2 deposit addresses; earlier orders keep theirs."""
    merchants.get_merchant(merchant_id)
    enabled = networks().get(network)
    if enabled is None:
        raise NotFound(f"network '{network}' is not enabled", code="UNSUPPORTED_NETWORK")
    if enabled.family == "tron":
        from usdt_gateway import tron_contract_mode

        named = {
            what: tron_contract_mode.tron_address(value, what)
            for what, value in (
                ("factory", factory),
                ("implementation", implementation),
                ("treasury", treasury),
                ("owner", owner),
            )
        }
        if tron_node is None:
            raise InvalidRequest("a Tron network is checked through a full node", code="UNSUPPORTED_NETWORK")
        tron_contract_mode.verify(tron_node, enabled, **named)
        cfg = ContractConfig(
            merchant_id,
            network,
            factory=named["factory"],
            implementation=named["implementation"],
            treasury=named["treasury"],
            owner=named["owner"],
            updated_at=0,
        )
    else:
        cfg = ContractConfig(
            merchant_id,
            network,
            factory=_address(factory, "factory"),
            implementation=_address(implementation, "implementation"),
            treasury=_address(treasury, "treasury"),
            owner=_address(owner, "owner"),
            updated_at=0,
        )
        if rpc is None:
            raise InvalidRequest("an EVM network is checked through its JSON-RPC endpoint", code="UNSUPPORTED_NETWORK")
        try:
            chain_id = int(rpc.call("eth_chainId", []), 16)
            if chain_id != enabled.chain_id:
                raise FactoryMismatch(f"the RPC endpoint serves chain {chain_id}, not {network} ({enabled.chain_id})")
            verify(rpc, cfg)
        except RpcError as exc:
            raise FactoryMismatch(f"the chain could not be read: {exc.message}") from exc
    cfg = replace(cfg, updated_at=clock.now_ms())
    before = store.get(*store.contract_config_key(merchant_id, network))
    if before is not None:  # a new factory keeps the network's reuse setting (admin set-reuse)
        kept = ContractConfig.from_item(before)
        cfg = replace(cfg, reuse=kept.reuse, reuse_quarantine_s=kept.reuse_quarantine_s)
    store.put(cfg.to_item())  # the operator's configuration, replaced as a whole
    return cfg.to_item()


def configure_reuse(merchant_id: str, network: str, *, reuse: bool, quarantine_s: int | None = None) -> dict[str, Any]:
    """Turn the reuse of swept deposit contracts on (with a quarantine, default 72 h) or off for a
    network in contract mode. Off: every order gets a fresh address, and no address enters the
    pool; addresses already in it stay out of service until it is on again."""
    item = store.get(*store.contract_config_key(merchant_id, network))
    if item is None:
        raise NotFound(
            f"{network} of merchant {merchant_id} is not in contract mode; switch it with set-contract first",
            code="NOT_CONTRACT_MODE",
        )
    cfg = ContractConfig.from_item(item)
    quarantine = cfg.reuse_quarantine_s if quarantine_s is None else quarantine_s
    if not 0 <= quarantine <= MAX_REUSE_QUARANTINE_S:
        raise InvalidRequest(
            f"the quarantine must be between 0 and {MAX_REUSE_QUARANTINE_S // 3600} hours", code="INVALID_QUARANTINE"
        )
    cfg = replace(cfg, reuse=reuse, reuse_quarantine_s=quarantine, updated_at=clock.now_ms())
    store.put(cfg.to_item())  # the operator's configuration, replaced as a whole
    return cfg.to_item()


def _bytecode(artifact: Path) -> str:
    try:
        return str(json.loads(artifact.read_text())["bytecode"])
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidRequest(f"no contract artifact at {artifact}: {exc}", code="NO_ARTIFACT") from exc


def implementation_deployment(*, chain_id: int, artifact: Path = DEPOSIT_ARTIFACT) -> dict[str, Any]:
    """The unsigned transaction that deploys a chain's Deposit implementation (once per chain: every
    merchant's factory on it clones the same one). It has no owner and no privileges."""
    return {"chainId": chain_id, "to": None, "value": 0, "data": _bytecode(artifact)}


def factory_deployment(
    *, chain_id: int, treasury: str, owner: str, implementation: str, artifact: Path = FACTORY_ARTIFACT
) -> dict[str, Any]:
    """The unsigned transaction that deploys a factory: init code ‖ abi-encoded (treasury, owner,
    implementation). Whoever sends it pays the gas; the factory has no deployer privileges."""
    bytecode = _bytecode(artifact)
    args = b"".join(
        bytes.fromhex(_address(a, what)[2:]).rjust(32, b"\x00")
        for a, what in ((treasury, "treasury"), (owner, "owner"), (implementation, "implementation"))
    )
    return {"chainId": chain_id, "to": None, "value": 0, "data": bytecode + args.hex()}


def send_deployment(
    rpc: Rpc, deployment: dict[str, Any], private_key: bytes, *, wait_s: float = 120.0
) -> dict[str, Any]:
    """Sign `deployment` with a funded key (EIP-1559) and send it; wait for its receipt. The key
    is used here only and never printed or logged."""
    from coincurve import PrivateKey

    key = PrivateKey(private_key)
    sender = to_checksum_address(keccak256(key.public_key.format(compressed=False)[1:])[12:])
    data = bytes.fromhex(str(deployment["data"]).removeprefix("0x"))
    nonce = int(rpc.call("eth_getTransactionCount", [sender, "pending"]), 16)
    gas_price = int(rpc.call("eth_gasPrice", []), 16)
    gas = int(rpc.call("eth_estimateGas", [{"from": sender, "data": "0x" + data.hex()}]), 16)
    tip = min(10**9, gas_price)
    tx = Eip1559Transaction(
        chain_id=int(deployment["chainId"]),
        nonce=nonce,
        max_priority_fee_per_gas=tip,
        max_fee_per_gas=2 * gas_price + tip,
        gas=gas + gas // 5,
        to=None,
        data=data,
    )
    compact = key.sign_recoverable(tx.signing_hash(), hasher=None)  # r ‖ s (low s) ‖ recovery id
    raw = tx.encode(compact[64], int.from_bytes(compact[:32]), int.from_bytes(compact[32:64]))
    tx_hash = "0x" + keccak256(raw).hex()
    rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
    deadline = time.monotonic() + wait_s
    while (receipt := rpc.call("eth_getTransactionReceipt", [tx_hash])) is None:
        if time.monotonic() > deadline:
            return {"txHash": tx_hash, "sender": sender, "contract": None, "status": "pending"}
        time.sleep(1.0)
    ok = int(receipt["status"], 16) == 1
    created = to_checksum_address(receipt["contractAddress"]) if ok and receipt.get("contractAddress") else None
    return {"txHash": tx_hash, "sender": sender, "contract": created, "status": "deployed" if ok else "reverted"}
