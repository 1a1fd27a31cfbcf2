"""The settlement contracts as committed: their ABI and bytecode artifacts are what the source
compiles to, every function is documented with NatSpec, and the deposit init code the factory
uses is the one the gateway computes addresses with."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import vyper

from devstack.settlement_contracts import (
    RELEASED,
    TEST_TOKENS,
    TRON_SWITCHES,
    artifact,
    build,
    build_tron,
    source,
    tron_artifact,
    tron_source,
)
from usdt_gateway.create2 import clone_init_code

ALL_SOURCES = [source(name) for name in RELEASED] + list(TEST_TOKENS.values())


@pytest.mark.parametrize("name", RELEASED)
def test_committed_artifacts_match_a_compile_from_source(name: str) -> None:
    # Given a released contract, When its source is compiled with the pinned vyper
    # Then the committed artifact has the same ABI and bytecode (python -m devstack.settlement_contracts --write)
    assert vyper.__version__ == "0.4.3"
    assert artifact(name) == build(name)


@pytest.mark.parametrize("name", RELEASED)
def test_committed_tron_artifacts_match_a_compile_of_the_switched_source(name: str) -> None:
    # Given a released contract, When its Tron variant is compiled from the same source with the switches
    # Then the committed TVM artifact has the same ABI and bytecode, and the ABI is the EVM one
    assert tron_artifact(name) == build_tron(name)
    assert tron_artifact(name)["abi"] == artifact(name)["abi"]


@pytest.mark.parametrize("name", RELEASED)
def test_the_tron_source_differs_only_in_the_create2_prefix_and_the_target(name: str) -> None:
    # Given a released source and its Tron variant
    evm, tron = source(name).read_text().splitlines(), tron_source(name).splitlines()
    # Then they differ in exactly two lines: the pragma and the one CREATE2 hash, whose prefix is 0x41
    changed = [(a, b) for a, b in zip(evm, tron, strict=True) if a != b]
    assert [b for _, b in changed] == [
        "# pragma evm-version paris",
        next(line for line in tron if 'keccak256(concat(x"41", convert(' in line),
    ]
    assert all(a.replace('x"ff"', 'x"41"').replace("cancun", "paris") == b for a, b in changed)
    assert len(TRON_SWITCHES) == 2


@pytest.mark.parametrize("name", RELEASED)
def test_the_tron_build_uses_no_opcode_newer_than_paris(name: str) -> None:
    # Given the Tron variant compiled to opcodes (init and runtime code)
    formats = ["opcodes", "opcodes_runtime"]
    out = vyper.compile_code(tron_source(name), contract_path=f"{name}.vy", output_formats=formats)
    opcodes = set(out["opcodes"].split()) | set(out["opcodes_runtime"].split())
    # Then it has none of Shanghai's or Cancun's opcodes, which TVM may lack
    assert not opcodes & {"PUSH0", "TLOAD", "TSTORE", "MCOPY", "BLOBHASH", "BLOBBASEFEE"}
    # and the EVM build does use them (the check can see them)
    evm = vyper.compile_code(source(name).read_text(), contract_path=f"{name}.vy", output_formats=["opcodes_runtime"])
    assert "PUSH0" in evm["opcodes_runtime"].split()


def _natspec(text: str, name: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    out = vyper.compile_code(text, contract_path=name, output_formats=["abi", "userdoc", "devdoc"])
    return out["userdoc"], out["devdoc"], out["abi"]


def _declared_functions(text: str) -> set[str]:
    """Names of the functions the source declares with `def` and marks @external."""
    return set(re.findall(r"@external\n(?:@\w+\n)*def (\w+)\(", text))


SOURCE_TEXTS = [(p.stem, p.read_text()) for p in ALL_SOURCES] + [(f"{n}-tron", tron_source(n)) for n in RELEASED]


@pytest.mark.parametrize(("name", "text"), SOURCE_TEXTS, ids=[n for n, _ in SOURCE_TEXTS])
def test_every_external_function_has_natspec(name: str, text: str) -> None:
    # Given a contract's external functions (the Tron variants too), When its NatSpec is compiled
    userdoc, devdoc, abi = _natspec(text, f"{name}.vy")
    declared = _declared_functions(text)
    assert declared, "no external function found: the pattern no longer matches the source"
    # Then each has a @notice, a @param per input and a @return per output
    missing = []
    for entry in abi:
        if entry.get("type") != "function" or entry["name"] not in declared:
            continue
        signature = f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"
        notice = userdoc.get("methods", {}).get(signature, {}).get("notice")
        dev = devdoc.get("methods", {}).get(signature, {})
        params = set(dev.get("params", {}))
        if not notice:
            missing.append(f"{signature}: @notice")
        missing += [f"{signature}: @param {i['name']}" for i in entry["inputs"] if i["name"] not in params]
        if entry["outputs"] and not dev.get("returns"):
            missing.append(f"{signature}: @return")
    assert missing == []
    # and the contract itself has a title and a notice
    assert devdoc.get("title") and userdoc.get("notice")


@pytest.mark.parametrize("path", ALL_SOURCES, ids=lambda p: p.stem)
def test_every_public_variable_is_explained(path: Path) -> None:
    # Given a contract's public state variables (vyper takes no NatSpec on them)
    # Then each is preceded by a comment line, or is a test token's plain ERC-20 field
    lines = path.read_text().splitlines()
    bare = [
        line for i, line in enumerate(lines) if re.match(r"^\w+: public\(", line) and not lines[i - 1].startswith("#")
    ]
    if path in TEST_TOKENS.values():
        assert all(re.match(r"^(balanceOf|target|payload|armed|lazy|reentry_\w+): ", b) for b in bare)
    else:
        assert bare == []


def test_the_factory_and_the_gateway_agree_on_the_clone_init_code() -> None:
    # Given the init code the gateway hashes for deposit addresses
    code = clone_init_code(bytes(20)).hex()
    head, tail = code[:38], code[78:]
    # Then both contracts build the same bytes around the implementation's address
    for name in RELEASED:
        text = source(name).read_text()
        assert f'PROXY_HEAD: constant(Bytes[19]) = x"{head}"' in text
        assert f'PROXY_TAIL: constant(Bytes[15]) = x"{tail}"' in text
