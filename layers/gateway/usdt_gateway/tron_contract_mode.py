"""Contract mode on Tron, the operator's side: check a merchant's DepositFactory through a full
node's HTTP API before `admin set-contract` stores it, and describe the CreateSmartContract
transactions of `admin deploy-implementation` and `deploy-factory` for the owner to send.

The checks are the EVM ones (contract_mode.py) adapted to what java-tron serves:
- chain identity: the node's genesis block id ends with the network's chain id (java-tron's
  `eth_chainId` is those last 4 bytes: mainnet 0x2b6653dc, Nile 0xcd8690dc);
- `wallet/getcontract` returns a contract's deployment bytecode (creation code and constructor
  arguments, as sent), so the implementation's must be the committed Tron build of Deposit, and
  the factory's the Tron build of DepositFactory followed by (treasury, owner, implementation);
- the implementation's runtime code (`wallet/getcontractinfo`) ends with its one immutable, the
  init code hash of its clones;
- the factory's immutables, read with `wallet/triggerconstantcontract`, are those given, and its
  `deposit_address(salt)` view equals create2.tron_deposit_address.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from usdt_gateway import create2
from usdt_gateway.address_codec import keccak256, normalize_tron_address, tron_address_from_body, tron_body20
from usdt_gateway.chain.jsonrpc import RpcError, RpcUnavailable
from usdt_gateway.chain.tron import Provider
from usdt_gateway.errors import InvalidRequest
from usdt_gateway.networks import Network

TRON_ARTIFACTS = Path(__file__).resolve().parents[3] / "contracts" / "build" / "tron"
DEPOSIT_ARTIFACT = TRON_ARTIFACTS / "Deposit.json"
FACTORY_ARTIFACT = TRON_ARTIFACTS / "DepositFactory.json"
_PROBE_SALT = b"\x00" * 31 + b"\x01"  # no order's salt (those are keccak of a tagged string)
# What a deployment may burn: the factory is 4.3 kB of code (about 200 energy a byte stored, plus
# its constructor), so about 1M energy, 100 TRX at 100 sun; the cap leaves room for a price rise.
DEPLOY_FEE_LIMIT_SUN = 1_000_000_000


def _mismatch(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="FACTORY_MISMATCH")


def tron_address(value: str, what: str) -> str:
    """A base58check `T...` address (also taken as 41-hex), or INVALID_ADDRESS."""
    try:
        return normalize_tron_address(value)
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {exc}", code="INVALID_ADDRESS") from exc


def _hex41(address: str) -> str:
    return "41" + tron_body20(address).hex()


def _bytecode(artifact: Path) -> str:
    try:
        return str(json.loads(artifact.read_text())["bytecode"]).removeprefix("0x").lower()
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidRequest(f"no contract artifact at {artifact}: {exc}", code="NO_ARTIFACT") from exc


def _abi(artifact: Path) -> list[Any]:
    return list(json.loads(artifact.read_text())["abi"])


def constructor_arguments(treasury: str, owner: str, implementation: str) -> str:
    """The factory's ABI-encoded (treasury, owner, implementation): 20-byte bodies, no 41 prefix."""
    return "".join(tron_body20(a).rjust(32, b"\x00").hex() for a in (treasury, owner, implementation))


def chain_id(node: Provider) -> int:
    """The chain id the node serves: the last 4 bytes of its genesis block id."""
    genesis = node.make_request("wallet/getblockbynum", {"num": 0})
    block_id = genesis.get("blockID") if isinstance(genesis, dict) else None
    if not isinstance(block_id, str) or len(block_id) != 64:
        raise _mismatch("the node serves no genesis block")
    return int(block_id[-8:], 16)


def _contract(node: Provider, address: str) -> dict[str, Any]:
    found = node.make_request("wallet/getcontract", {"value": _hex41(address), "visible": False})
    if not isinstance(found, dict) or not found.get("bytecode"):
        raise _mismatch(f"{address} holds no contract")
    return found


def _view(node: Provider, contract: str, signature: str, parameter: str = "") -> bytes:
    answer = node.make_request(
        "wallet/triggerconstantcontract",
        {
            "owner_address": _hex41(contract),
            "contract_address": _hex41(contract),
            "function_selector": signature,
            "parameter": parameter,
            "visible": False,
        },
    )
    result = answer.get("result", {}) if isinstance(answer, dict) else {}
    words = answer.get("constant_result") if isinstance(answer, dict) else None
    if result.get("result") is not True or not isinstance(words, list) or len(words) != 1:
        raise _mismatch(f"{contract} did not answer {signature}")
    value = bytes.fromhex(str(words[0]))
    if len(value) != 32:
        raise _mismatch(f"{contract} answered {len(value)} bytes to {signature}, not one word")
    return value


def _word_address(word: bytes) -> str:
    return tron_address_from_body(word[12:])


def verify(node: Provider, network: Network, *, factory: str, implementation: str, treasury: str, owner: str) -> None:
    """FACTORY_MISMATCH unless the node serves `network` and holds exactly the released factory
    and implementation named (addresses base58check)."""
    try:
        served = chain_id(node)
        if served != network.chain_id:
            raise _mismatch(f"the node serves chain {served}, not {network.name} ({network.chain_id})")
        impl = _contract(node, implementation)
        if str(impl["bytecode"]).lower() != _bytecode(DEPOSIT_ARTIFACT):
            raise _mismatch(f"{implementation} holds no released Deposit contract (its bytecode differs)")
        clone_hash = keccak256(create2.clone_init_code(tron_body20(implementation)))
        info = node.make_request("wallet/getcontractinfo", {"value": _hex41(implementation), "visible": False})
        runtime = str(info.get("runtimecode", "")) if isinstance(info, dict) else ""
        if not runtime.lower().endswith(clone_hash.hex()):
            raise _mismatch(f"{implementation}'s runtime code does not hold its clones' init code hash")
        made = _contract(node, factory)
        expected = _bytecode(FACTORY_ARTIFACT) + constructor_arguments(treasury, owner, implementation)
        if str(made["bytecode"]).lower() != expected:
            raise _mismatch(f"{factory} holds no released DepositFactory for this treasury, owner and implementation")
        facts = {
            "treasury": (_word_address(_view(node, factory, "TREASURY()")), treasury),
            "owner": (_word_address(_view(node, factory, "OWNER()")), owner),
            "implementation": (_word_address(_view(node, factory, "DEPOSIT_IMPLEMENTATION()")), implementation),
            "init_code_hash": (_view(node, factory, "DEPOSIT_INIT_CODE_HASH()").hex(), clone_hash.hex()),
        }
        for name, (have, want) in facts.items():
            if have != want:
                raise _mismatch(f"the factory's {name} is {have}, expected {want}")
        on_chain = _word_address(_view(node, factory, "deposit_address(bytes32)", _PROBE_SALT.hex()))
        offline = create2.tron_deposit_address(factory, implementation, _PROBE_SALT)
        if on_chain != offline:
            raise _mismatch(f"the factory computes deposit address {on_chain}, the gateway {offline}")
    except (RpcUnavailable, RpcError) as exc:
        raise _mismatch(f"the chain could not be read: {exc}") from exc


def _create_smart_contract(
    network: Network, artifact: Path, name: str, parameter: str, sender: str | None, fee_limit: int
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "owner_address": tron_address(sender, "sender") if sender else None,
        "name": name,
        "abi": json.dumps(_abi(artifact), separators=(",", ":")),
        "bytecode": _bytecode(artifact),
        "parameter": parameter,
        "fee_limit": fee_limit,
        "call_value": 0,
        # Callers pay all the energy of their calls: the deployer is never charged for a sweep.
        "consume_user_resource_percent": 100,
        "origin_energy_limit": 1,
        "visible": True,
    }
    return {
        "network": network.name,
        "chainId": network.chain_id,
        "createSmartContract": body,
        "send": "POST it to the node's wallet/deploycontract (with owner_address set to the sender), sign the "
        "transaction returned (sha256 of raw_data) and POST it to wallet/broadcasttransaction; or deploy the same "
        "bytecode, parameter and fee limit from a wallet",
        "sent": False,
    }


def implementation_deployment(network: Network, *, sender: str | None, fee_limit: int) -> dict[str, Any]:
    """The unsigned CreateSmartContract of the chain's Tron Deposit implementation."""
    return _create_smart_contract(network, DEPOSIT_ARTIFACT, "Deposit", "", sender, fee_limit)


def factory_deployment(
    network: Network, *, treasury: str, owner: str, implementation: str, sender: str | None, fee_limit: int
) -> dict[str, Any]:
    """The unsigned CreateSmartContract of a merchant's Tron DepositFactory."""
    args = constructor_arguments(
        tron_address(treasury, "treasury"), tron_address(owner, "owner"), tron_address(implementation, "implementation")
    )
    return _create_smart_contract(network, FACTORY_ARTIFACT, "DepositFactory", args, sender, fee_limit)
