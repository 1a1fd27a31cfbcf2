"""The settlement contracts (contracts/Deposit.vy, contracts/DepositFactory.vy) and their test
tokens: compiled from source with the pinned vyper, committed as ABI + bytecode artifacts under
contracts/build/, and deployed on a local chain for the tests and benches.

    python -m devstack.settlement_contracts --write    # regenerate contracts/build/*.json

Development and test tooling only: the gateway's own code never imports this module.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from devstack.evm import CONTRACTS_DIR, _wait, compile_contract

BUILD_DIR = CONTRACTS_DIR / "build"
COMPILER = "vyper 0.4.3"
# The contracts a merchant deploys: their artifacts are committed and must match the source.
RELEASED = ("Deposit", "DepositFactory")
TEST_TOKENS = {
    "no-return": CONTRACTS_DIR / "test" / "TestUSDTNoReturn.vy",
    "false-return": CONTRACTS_DIR / "test" / "TestUSDTFalseReturn.vy",
    "reentrant": CONTRACTS_DIR / "test" / "TestUSDTReentrant.vy",
}


def source(name: str) -> Path:
    return CONTRACTS_DIR / f"{name}.vy"


def artifact_path(name: str) -> Path:
    return BUILD_DIR / f"{name}.json"


def build(name: str) -> dict[str, Any]:
    """The artifact of a released contract, compiled from its source now."""
    abi, bytecode = compile_contract(source(name))
    return {"contractName": name, "compiler": COMPILER, "abi": abi, "bytecode": bytecode}


def artifact(name: str) -> dict[str, Any]:
    """The committed artifact of a released contract."""
    loaded: dict[str, Any] = json.loads(artifact_path(name).read_text())
    return loaded


def write_artifacts() -> list[Path]:
    BUILD_DIR.mkdir(exist_ok=True)
    written = []
    for name in RELEASED:
        path = artifact_path(name)
        path.write_text(json.dumps(build(name), indent=1) + "\n")
        written.append(path)
    return written


def _deploy(w3: Web3, abi: list[dict[str, Any]], bytecode: str, sender: str, *args: Any) -> Contract:
    tx_hash = w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args).transact({"from": sender})
    address = _wait(w3, tx_hash)["contractAddress"]
    assert address is not None
    return w3.eth.contract(address=address, abi=abi)


def deploy_deposit_implementation(w3: Web3, sender: str) -> Contract:
    """The chain's Deposit contract (one serves every factory), from the committed artifact."""
    art = artifact("Deposit")
    return _deploy(w3, art["abi"], art["bytecode"], sender)


def deploy_factory(w3: Web3, sender: str, *, treasury: str, owner: str, implementation: str) -> Contract:
    """A merchant's DepositFactory, from the committed artifact."""
    art = artifact("DepositFactory")
    return _deploy(w3, art["abi"], art["bytecode"], sender, treasury, owner, implementation)


def deploy_test_token(w3: Web3, sender: str, kind: str) -> Contract:
    """A test token: "no-return" (like Ethereum USDT), "false-return" (like Tron USDT) or
    "reentrant" (hostile); anyone may mint."""
    abi, bytecode = compile_contract(TEST_TOKENS[kind])
    return _deploy(w3, abi, bytecode, sender)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write contracts/build/*.json from source")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_artifacts():
            print(path.relative_to(CONTRACTS_DIR.parent))
        return 0
    stale = [name for name in RELEASED if build(name) != artifact(name)]
    for name in stale:
        print(f"{artifact_path(name).relative_to(CONTRACTS_DIR.parent)} does not match {name}.vy", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
