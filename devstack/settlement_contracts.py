"""The settlement contracts (contracts/Deposit.vy, contracts/DepositFactory.vy) and their test
tokens: compiled from source with the pinned vyper, committed as ABI + bytecode artifacts under
contracts/build/, and deployed on a local chain for the tests and benches.

The Tron build (contracts/build/tron/) compiles the same sources with two lines switched: the
CREATE2 prefix 0xff becomes TVM's 0x41 (TIP-26), in the clone's caller check and the factory's
address computation, and the target is `paris`, whose opcodes TVM has long run (no PUSH0, and the
re-entrancy lock in storage rather than in Cancun's transient storage).

    python -m devstack.settlement_contracts --write    # regenerate contracts/build/*.json and tron/*.json

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
TRON_BUILD_DIR = BUILD_DIR / "tron"
COMPILER = "vyper 0.4.3"
TRON_COMPILER = "vyper 0.4.3, evm-version paris, CREATE2 prefix 0x41"
# (EVM line, Tron line): each must occur exactly once in each released source.
TRON_SWITCHES = (
    ("# pragma evm-version cancun\n", "# pragma evm-version paris\n"),
    ('keccak256(concat(x"ff", ', 'keccak256(concat(x"41", '),
)
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


def tron_artifact_path(name: str) -> Path:
    return TRON_BUILD_DIR / f"{name}.json"


def build(name: str) -> dict[str, Any]:
    """The artifact of a released contract, compiled from its source now."""
    abi, bytecode = compile_contract(source(name))
    return {"contractName": name, "compiler": COMPILER, "abi": abi, "bytecode": bytecode}


def tron_source(name: str) -> str:
    """A released contract's source with the Tron switches applied."""
    text = source(name).read_text()
    for evm, tron in TRON_SWITCHES:
        if text.count(evm) != 1:
            raise ValueError(f"{name}.vy holds {evm!r} {text.count(evm)} times, not once")
        text = text.replace(evm, tron)
    return text


def build_tron(name: str) -> dict[str, Any]:
    """The TVM artifact of a released contract, compiled from its switched source now."""
    import vyper  # only the tooling that builds contracts pays for the import

    out = vyper.compile_code(tron_source(name), contract_path=f"{name}.vy", output_formats=["abi", "bytecode"])
    return {"contractName": name, "compiler": TRON_COMPILER, "abi": out["abi"], "bytecode": out["bytecode"]}


def artifact(name: str) -> dict[str, Any]:
    """The committed artifact of a released contract."""
    loaded: dict[str, Any] = json.loads(artifact_path(name).read_text())
    return loaded


def tron_artifact(name: str) -> dict[str, Any]:
    """The committed TVM artifact of a released contract."""
    loaded: dict[str, Any] = json.loads(tron_artifact_path(name).read_text())
    return loaded


def write_artifacts() -> list[Path]:
    TRON_BUILD_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name in RELEASED:
        for path, built in ((artifact_path(name), build(name)), (tron_artifact_path(name), build_tron(name))):
            path.write_text(json.dumps(built, indent=1) + "\n")
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


def deploy_tron_build(w3: Web3, sender: str, name: str, *args: Any) -> Contract:
    """A released contract's committed Tron build, deployed on an EVM chain to read its views:
    its CREATE2 hashes use 0x41, so its deployments and clone checks only work on TVM."""
    art = tron_artifact(name)
    return _deploy(w3, art["abi"], art["bytecode"], sender, *args)


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
    stale = [artifact_path(name) for name in RELEASED if build(name) != artifact(name)]
    stale += [tron_artifact_path(name) for name in RELEASED if build_tron(name) != tron_artifact(name)]
    for path in stale:
        print(f"{path.relative_to(CONTRACTS_DIR.parent)} does not match {path.stem}.vy", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
