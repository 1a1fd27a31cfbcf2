"""Offline CREATE2 addresses of contract mode: the EIP-1014 examples, the clone init code the
factory deploys, and the per-order salt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from usdt_gateway.address_codec import tron_address_from_body, tron_body20
from usdt_gateway.create2 import (
    TRON_PREFIX,
    clone_init_code,
    create2_address,
    deposit_address,
    keccak256,
    order_salt,
    tron_deposit_address,
)

LAYER = Path(__file__).resolve().parents[2] / "layers" / "gateway"
ZERO32 = "00" * 32

# The examples listed in EIP-1014 itself: (deployer, salt, init code, address).
EIP1014_VECTORS = [
    ("0x" + "00" * 20, ZERO32, "00", "0x4D1A2e2bB4F88F0250f26Ffff098B0b30B26BF38"),
    ("0xdeadbeef" + "00" * 16, ZERO32, "00", "0xB928f69Bb1D91Cd65274e3c79d8986362984fDA3"),
    (
        "0xdeadbeef" + "00" * 16,
        "000000000000000000000000feed000000000000000000000000000000000000",
        "00",
        "0xD04116cDd17beBE565EB2422F2497E06cC1C9833",
    ),
    ("0x" + "00" * 20, ZERO32, "deadbeef", "0x70f2b2914A2a4b783FaEFb75f459A580616Fcb5e"),
    (
        "0x00000000000000000000000000000000deadbeef",
        "00000000000000000000000000000000000000000000000000000000cafebabe",
        "deadbeef",
        "0x60f3f640a8508fC6a86d45DF051962668E1e8AC7",
    ),
    (
        "0x00000000000000000000000000000000deadbeef",
        "00000000000000000000000000000000000000000000000000000000cafebabe",
        "deadbeef" * 11,
        "0x1d8bfDC5D46DC4f61D6b6115972536eBE6A8854C",
    ),
    ("0x" + "00" * 20, ZERO32, "", "0xE33C0C7F7df4809055C3ebA6c09CFe4BaF1BD9e0"),
]


@pytest.mark.parametrize(("deployer", "salt", "init_code", "expected"), EIP1014_VECTORS)
def test_eip1014_examples(deployer: str, salt: str, init_code: str, expected: str) -> None:
    # Given an example of EIP-1014, When its address is computed offline, Then it is the EIP's
    address = create2_address(deployer, bytes.fromhex(salt), keccak256(bytes.fromhex(init_code)))
    assert "0x" + address.hex() == expected.lower()


# Tron (TIP-26, prefix 0x41): (factory, salt text, expected) with one init code hash, from the
# address-generation test of a public Tron wallet factory; the salt is keccak256 of the text.
TRON_INIT_CODE_HASH = "e0dba80b6b1cd71e9dc972924f072016008963014cd10c34d5ebd96d9b93ddcc"
TRON_VECTORS = [
    ("TAtb9skGf5JU62NKYPY1G8THDWV9T7mx53", "1", "TLsYCgQ82LHeJLbPtondUN4wGm9ZpjDHuo"),
    ("TAtb9skGf5JU62NKYPY1G8THDWV9T7mx53", "2", "THNTVbyvX1BHHphXw5N9kUhg5hMYC1fk3r"),
    (
        "TCX2uhV4HjcWRB7hrTQL57fFRdxgiyypEc",
        "68168199-96a9-4515-99b8-7ef44f13d209",
        "TWnvbujUHt2qXZkk5e1m2MYAepQuArfXAU",
    ),
    (
        "TCX2uhV4HjcWRB7hrTQL57fFRdxgiyypEc",
        "c98b6212-80aa-470c-9741-e427e0cdda80",
        "TQ4wSo6aREXV8sfoMtpPnUhUBtcG9EkU6n",
    ),
]


@pytest.mark.parametrize(("factory", "salt_text", "expected"), TRON_VECTORS)
def test_tron_create2_addresses(factory: str, salt_text: str, expected: str) -> None:
    # Given a Tron factory (base58), a salt and an init code hash
    # When the address is computed with Tron's 0x41 prefix from the factory's 20-byte body
    body = create2_address(
        tron_body20(factory), keccak256(salt_text.encode()), bytes.fromhex(TRON_INIT_CODE_HASH), prefix=TRON_PREFIX
    )
    # Then, 0x41-prefixed and base58check-encoded, it is the expected Tron address
    assert tron_address_from_body(body) == expected


def test_tron_prefix_gives_another_address_from_the_same_inputs() -> None:
    # Given the inputs of an EIP-1014 example, When computed with Tron's 0x41 prefix
    deployer, salt, init_code, evm = EIP1014_VECTORS[4]
    code_hash = keccak256(bytes.fromhex(init_code))
    tron = create2_address(deployer, bytes.fromhex(salt), code_hash, prefix=TRON_PREFIX)
    # Then it is keccak256(0x41 ‖ deployer ‖ salt ‖ hash)[12:], not the EVM address
    assert tron == keccak256(b"\x41" + bytes.fromhex(deployer[2:]) + bytes.fromhex(salt) + code_hash)[12:]
    assert "0x" + tron.hex() != evm.lower()


def test_clone_init_code_is_vypers_minimal_proxy() -> None:
    # Given an implementation address, When its clone's init code is built
    implementation = "0x" + "ab" * 20
    code = clone_init_code(implementation)
    # Then it is vyper's 9-byte loader and the 45-byte EIP-1167 runtime around the address
    assert code == bytes.fromhex(
        "602d3d8160093d39f3" + "363d3d373d3d3d363d73" + "ab" * 20 + "5af43d82803e903d91602b57fd5bf3"
    )
    # and the deposit address is the CREATE2 address of that init code
    factory, salt = "0x" + "12" * 20, bytes(range(32))
    assert deposit_address(factory, implementation, salt) == create2_address(factory, salt, keccak256(code))


def test_order_salt_is_stable_and_separates_ids() -> None:
    # Given the same order twice, and id pairs that concatenate to the same text
    # Then the same order gets the same 32-byte salt, and the others differ
    assert order_salt("m1", "ord_1") == order_salt("m1", "ord_1")
    assert len(order_salt("m1", "ord_1")) == 32
    assert order_salt("ab", "c") != order_salt("a", "bc")
    assert order_salt("m1", "ord_1") != order_salt("m2", "ord_1")
    with pytest.raises(ValueError, match="NUL"):
        order_salt("m\x00", "x")


@pytest.mark.parametrize("bad", ["0x1234", b"\x00" * 19])
def test_rejects_addresses_that_are_not_20_bytes(bad: str | bytes) -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        create2_address(bad, bytes(32), bytes(32))


def test_create2_does_not_import_web3() -> None:
    # Given a fresh interpreter, When the module is imported, Then neither web3 nor eth_utils came with it
    code = (
        "import sys, usdt_gateway.create2; "
        "print(sorted(m for m in ('web3', 'eth_utils', 'eth_hash') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(LAYER)}
    )
    assert out.stdout.strip() == "[]"


# -- Tron deposit addresses, checked against a second implementation of the formula ---------------
# The expected values below come from this file's own keccak (pycryptodome, imported directly),
# sha256 (hashlib) and base58 (written out here), not from usdt_gateway's code.

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _keccak(data: bytes) -> bytes:
    from Crypto.Hash import keccak as pycryptodome_keccak

    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def _b58check(payload: bytes) -> str:
    import hashlib

    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number, text = int.from_bytes(data, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        text = _B58[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


def _b58check_body(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _B58.index(char)
    raw = number.to_bytes(25, "big")
    assert raw[0] == 0x41
    return raw[1:21]


def _tron_create2(factory: str, implementation: str, salt: bytes) -> str:
    """keccak256(0x41 ‖ factory20 ‖ salt ‖ keccak256(clone init code))[12:], 0x41-prefixed, base58check."""
    init_code = (
        bytes.fromhex("602d3d8160093d39f3363d3d373d3d3d363d73")
        + _b58check_body(implementation)
        + bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
    )
    digest = _keccak(b"\x41" + _b58check_body(factory) + salt + _keccak(init_code))
    return _b58check(b"\x41" + digest[12:])


USDT_TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
TRON_FACTORY = "TAtb9skGf5JU62NKYPY1G8THDWV9T7mx53"
TRON_IMPLEMENTATION = "TCX2uhV4HjcWRB7hrTQL57fFRdxgiyypEc"
# (merchant, order, deposit address): pinned from the second implementation above.
TRON_DEPOSIT_VECTORS = [
    ("m_1", "ord_1", "TLRCqAPkpNnmSfyx74nRNwqANhLw1QNZEb"),
    ("m_1", "ord_2", "TXma52EVyX6Dfh5tUeBRBW3HgE8XC4W5mq"),
    ("m_2", "ord_1", "TFhhQA7izdWPAPZVJTxQSBd7FZAzWLHKHG"),
]


def test_the_second_base58_implementation_reads_tron_usdt() -> None:
    # Given Tron USDT's address and its documented hex, Then the test's own base58 agrees both ways
    assert _b58check_body(USDT_TRON).hex() == "a614f803b6fd780986a42c78ec9c7f77e6ded13c"
    assert _b58check(bytes.fromhex("41a614f803b6fd780986a42c78ec9c7f77e6ded13c")) == USDT_TRON


def test_order_salt_is_keccak_of_the_tagged_ids() -> None:
    # Given the salt formula computed here with pycryptodome, Then the gateway's salt is the same
    assert order_salt("m_1", "ord_1") == _keccak(b"usdt-gateway/deposit-salt/v1\x00m_1\x00ord_1")
    assert order_salt("m_1", "ord_1").hex() == "e7abb51df782f81ea325c0dc4f91c42eb4041ca01f284b1c0fe65ee6f0159a7b"


@pytest.mark.parametrize(("merchant", "order", "expected"), TRON_DEPOSIT_VECTORS)
def test_tron_deposit_addresses_match_an_independent_computation(merchant: str, order: str, expected: str) -> None:
    # Given a Tron factory, its Deposit implementation and an order's salt
    salt = order_salt(merchant, order)
    # When the gateway computes the order's deposit address offline
    address = tron_deposit_address(TRON_FACTORY, TRON_IMPLEMENTATION, salt)
    # Then it is the base58check address the formula gives when computed separately, and the pinned one
    assert address == _tron_create2(TRON_FACTORY, TRON_IMPLEMENTATION, salt) == expected
    # and hex input names the same factory and implementation
    hex_factory = "41" + _b58check_body(TRON_FACTORY).hex()
    hex_implementation = "41" + _b58check_body(TRON_IMPLEMENTATION).hex()
    assert tron_deposit_address(hex_factory, hex_implementation, salt) == expected


def test_a_tron_deposit_address_is_not_the_evm_one_under_the_same_bodies() -> None:
    # Given the same factory and implementation bodies and salt on an EVM chain
    salt = order_salt("m_1", "ord_1")
    evm = deposit_address(_b58check_body(TRON_FACTORY), _b58check_body(TRON_IMPLEMENTATION), salt)
    # Then the 0x41 prefix gives another address
    assert _b58check_body(tron_deposit_address(TRON_FACTORY, TRON_IMPLEMENTATION, salt)) != evm
