"""The refund signing helper (usdt_gateway_client.refunds), offline: its Keccak-256 and EIP-712
digest against eth_account's, its signatures recovered by eth_account and by coincurve (as the
gateway checks them), every refusal of typed data that is not what the merchant asked for, the
KMS/HSM path, and the package without eth_account."""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import sys
import tomllib
from collections.abc import Callable
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import coincurve
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from refund_data import ETH_USDT, FACTORY, PAYER, eth_account_digest, refund_json, typed_data
from usdt_gateway_client import Refund
from usdt_gateway_client.refunds import (
    RefundVerificationError,
    check_refund,
    keccak256,
    recover_address,
    refund_digest,
    sign_refund,
    signature_from_der,
    signature_from_rs,
)
from web3 import Web3

SDK = Path(__file__).resolve().parent.parent
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
OTHER = "0x" + "0f" * 20
ATTACKER = "0x" + "a7" * 20


@pytest.fixture
def owner() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


def refund_for(owner: LocalAccount, typed: dict[str, Any] | None = None, **fields: Any) -> Refund:
    """The refund as the gateway would answer it for this owner (as the client parses JSON)."""
    data = refund_json(typed, owner=owner.address.lower(), **fields)
    parsed: dict[str, Any] = json.loads(json.dumps(data), parse_float=Decimal)
    return Refund.from_dict(parsed)


def coincurve_recover(signature: str, digest: bytes) -> str:
    """The signer's address as the gateway recovers it (coincurve, v 27/28 as recovery id 0/1)."""
    raw = bytes.fromhex(signature[2:])
    public = coincurve.PublicKey.from_signature_and_message(raw[:64] + bytes([raw[64] - 27]), digest, hasher=None)
    return "0x" + bytes(Web3.keccak(public.format(compressed=False)[1:]))[-20:].hex()


# --- the digest -------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 31, 32, 135, 136, 137, 271, 272, 273, 1000])
def test_keccak256_is_ethereums(length: int) -> None:
    # Lengths around the 136-byte rate, where the padding spills into another block
    data = secrets.token_bytes(length)
    assert keccak256(data) == bytes(Web3.keccak(data))


def test_keccak256_known_vectors() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"


def test_eip55_checksums_are_web3s() -> None:
    from usdt_gateway_client.refunds import _checksummed

    for _ in range(20):
        checksummed = Web3.to_checksum_address("0x" + secrets.token_hex(20))
        letters = [i for i, c in enumerate(checksummed) if i > 1 and c.isalpha()]
        if not letters:
            continue
        i = letters[0]
        flipped = checksummed[:i] + checksummed[i].swapcase() + checksummed[i + 1 :]
        mixed = flipped[2:] not in (flipped[2:].lower(), flipped[2:].upper())  # else it claims no checksum
        assert _checksummed(checksummed) and _checksummed(checksummed.lower())
        assert _checksummed(flipped) is not mixed


@pytest.mark.parametrize(
    "typed",
    [
        typed_data(),
        # integers as JSON numbers, checksummed addresses, the largest values
        typed_data(
            chain_id=11155111,
            factory=Web3.to_checksum_address(FACTORY),
            token=Web3.to_checksum_address(ETH_USDT),
            to=Web3.to_checksum_address(PAYER),
            amount=2**256 - 1,
            nonce=0,
            deadline=str(2**256 - 1),
        ),
        typed_data(chain_id=56, amount="1", nonce="1", deadline=1764720000, salt="0x" + "00" * 32),
    ],
)
def test_the_digest_is_eth_accounts(typed: dict[str, Any]) -> None:
    assert refund_digest(typed) == eth_account_digest(typed)


def test_the_digest_of_random_refunds_is_eth_accounts() -> None:
    for _ in range(20):
        typed = typed_data(
            chain_id=secrets.randbelow(2**64),
            factory="0x" + secrets.token_hex(20),
            token="0x" + secrets.token_hex(20),
            salt="0x" + secrets.token_hex(32),
            to="0x" + secrets.token_hex(20),
            amount=str(secrets.randbits(256)),
            nonce=str(secrets.randbits(256)),
            deadline=secrets.randbits(40),
        )
        assert refund_digest(typed) == eth_account_digest(typed), typed


# --- signing ----------------------------------------------------------------------------------


def test_the_signature_recovers_to_the_owner(owner: LocalAccount) -> None:
    # Given a refund of 12.5 USDT on Ethereum as the gateway prepares it
    refund = refund_for(owner)
    assert refund.typed_data is not None
    # When the owner's key signs it, with the merchant's expectations
    signature = sign_refund(
        refund,
        owner.key,
        expected_to=PAYER.upper().replace("0X", "0x"),
        expected_amount=Decimal("12.50"),
        expected_factory=Web3.to_checksum_address(FACTORY),
        expected_chain_id=1,
    )
    # Then it is 65 bytes r || s || v, v 27 or 28, s low
    raw = bytes.fromhex(signature[2:])
    assert signature.startswith("0x") and len(raw) == 65
    assert raw[64] in (27, 28) and int.from_bytes(raw[32:64], "big") <= SECP256K1_N // 2
    # And eth_account, coincurve (the gateway's check) and the helper's own recovery find the owner
    digest = refund_digest(refund.typed_data)
    signable = encode_typed_data(full_message=copy.deepcopy(dict(refund.typed_data)))
    assert Account.recover_message(signable, signature=raw) == owner.address
    assert coincurve_recover(signature, digest) == owner.address.lower()
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    assert recover_address(digest, r, s, v) == owner.address.lower()
    # And the key may be given as hex too
    assert sign_refund(refund, owner.key.hex()) == signature


def test_a_high_s_signature_is_normalised(owner: LocalAccount) -> None:
    # Given a valid low-s signature of a digest, and its malleable high-s twin
    digest = secrets.token_bytes(32)
    signed = Account.unsafe_sign_hash(digest, owner.key)
    twin_s = SECP256K1_N - signed.s
    # When either is put in r || s || v form for the owner
    low = signature_from_rs(signed.r, signed.s, digest, owner.address)
    high = signature_from_rs(signed.r, twin_s, digest, owner.address)
    # Then both are the low-s signature, which recovers to the owner
    assert low == high == "0x" + bytes(signed.signature).hex()
    assert coincurve_recover(low, digest) == owner.address.lower()


def test_a_key_that_is_not_the_owner_signs_nothing(owner: LocalAccount) -> None:
    refund = refund_for(owner)
    with pytest.raises(RefundVerificationError, match="needs the owner"):
        sign_refund(refund, Account.create().key)


# --- refusals ---------------------------------------------------------------------------------


def _edit(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    typed = typed_data()
    change(typed)
    return typed


def _types(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    return _edit(lambda t: change(t["types"]))


# (typed data, refund field overrides, check_refund keywords, what the error says)
REFUSALS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]] = {
    "recipient differs from the refund's": (
        typed_data(to=ATTACKER),
        {"to": PAYER},
        {},
        "recipient is 0xa7.*, but the refund's to is 0xbe",
    ),
    "recipient is not the expected one": (
        typed_data(to=ATTACKER),
        {},
        {"expected_to": PAYER},
        "but expected_to is 0xbe",
    ),
    "expected recipient mistyped in its checksummed form": (
        typed_data(to="0x52908400098527886E0F7030069857D2E4169EE7"),
        {},
        {"expected_to": "0x52908400098527886E0F7030069857D2E4169Ee7"},
        "fails its EIP-55 checksum",
    ),
    "expected factory is not an address": (typed_data(), {}, {"expected_factory": "factory"}, "not an address"),
    "recipient is the zero address": (typed_data(to="0x" + "00" * 20), {}, {}, "zero address"),
    "amount differs from the refund's": (
        typed_data(amount="125000000"),
        {},
        {},
        "signed amount is 125000000 base units, but the refund's 12.5",
    ),
    "amount is not the expected one": (typed_data(), {}, {"expected_amount": "1.25"}, "expected_amount"),
    "amount is zero": (typed_data(amount="0"), {"amount": "0"}, {}, "zero"),
    "amount finer than the token": (typed_data(), {"amount": "12.5000001"}, {}, "not a whole number of base units"),
    "amount is not a number": (typed_data(), {"amount": "NaN"}, {}, "not a number"),
    "amount is infinite": (typed_data(), {"amount": "Infinity"}, {}, "not a number"),
    "expected amount finer than the token": (typed_data(), {}, {"expected_amount": "12.5000001"}, "whole number"),
    "decimals contradict the token's": (typed_data(amount="12500000000000000000"), {}, {"decimals": 18}, "contradicts"),
    "factory differs from the refund's": (
        typed_data(factory=OTHER),
        {"factory": FACTORY},
        {},
        "verifyingContract is 0x0f.*, but the refund's factory",
    ),
    "factory is not the expected one": (
        typed_data(factory=OTHER),
        {},
        {"expected_factory": FACTORY},
        "but expected_factory is 0xfa",
    ),
    "chain is not the network's": (typed_data(chain_id=56), {}, {}, "chainId is 56, but network 'eth' is chain 1"),
    "chain is not the expected one": (typed_data(), {}, {"expected_chain_id": 56}, "expected_chain_id"),
    "token differs from the refund's": (
        typed_data(),
        {"tokenContract": OTHER},
        {},
        "the refund's token_contract is 0x0f",
    ),
    "token is another network's USDT": (typed_data(), {"network": "custom"}, {}, "eth's USDT"),
    "token decimals unknown": (typed_data(chain_id=31337, token=OTHER), {"network": "local"}, {}, "decimals="),
    "deadline differs from the refund's": (
        typed_data(),
        {"deadline": 2**40 + 1},
        {},
        "signed deadline is 1099511627776",
    ),
    "deadline has passed": (typed_data(deadline=1_000), {}, {}, "has passed"),
    "server digest is another refund's": (
        typed_data(),
        {"digest": "0x" + eth_account_digest(typed_data(to=ATTACKER)).hex()},
        {},
        "is not the typed data's",
    ),
    "server digest is not a digest": (typed_data(), {"digest": "0x1234"}, {}, "digest is not 32 bytes"),
    "domain name": (_edit(lambda t: t["domain"].update(name="USDT Gateway Deposit")), {}, {}, "domain"),
    "domain version": (_edit(lambda t: t["domain"].update(version="2")), {}, {}, "domain"),
    "domain with a salt": (_edit(lambda t: t["domain"].update(salt="0x" + "00" * 32)), {}, {}, "fields"),
    "domain without chainId": (_edit(lambda t: t["domain"].pop("chainId")), {}, {}, "fields"),
    "primary type": (_edit(lambda t: t.update(primaryType="Permit")), {}, {}, "primaryType"),
    "fields reordered": (_types(lambda ts: ts["Refund"].reverse()), {}, {}, "types"),
    "amount narrowed to uint128": (_types(lambda ts: ts["Refund"][3].update(type="uint128")), {}, {}, "types"),
    "another type": (_types(lambda ts: ts.update(Memo=[{"name": "text", "type": "string"}])), {}, {}, "types"),
    "domain type without version": (_types(lambda ts: ts["EIP712Domain"].pop(1)), {}, {}, "types"),
    "message with a memo": (_edit(lambda t: t["message"].update(memo="hi")), {}, {}, "fields"),
    "message without nonce": (_edit(lambda t: t["message"].pop("nonce")), {}, {}, "fields"),
    "hex amount": (typed_data(amount=hex(12_500_000)), {}, {}, "unsigned integer"),
    "amount with a leading zero": (typed_data(amount="012500000"), {}, {}, "unsigned integer"),
    "negative amount": (typed_data(amount=-12_500_000), {}, {}, "uint256"),
    "fractional amount": (typed_data(amount=12500000.5), {}, {}, "unsigned integer"),
    "amount beyond uint256": (typed_data(amount=str(2**256)), {}, {}, "uint256"),
    "boolean chain id": (typed_data(chain_id=True), {}, {}, "unsigned integer"),
    "short salt": (typed_data(salt="0x" + "5a" * 31), {}, {}, "salt"),
    "malformed recipient": (typed_data(to="0x1234"), {"to": "0x1234"}, {}, "not an address"),
    "not an object": (_edit(lambda t: t.update(message=["to", PAYER])), {}, {}, "not an object"),
}


@pytest.mark.parametrize(("typed", "fields", "keywords", "says"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refund_that_is_not_the_one_asked_for_is_refused(
    owner: LocalAccount, typed: dict[str, Any], fields: dict[str, Any], keywords: dict[str, Any], says: str
) -> None:
    # Given a refund whose typed data (and, unless said, the gateway's digest of it) are tampered
    if "digest" not in fields:
        try:
            fields = {**fields, "digest": "0x" + eth_account_digest(typed).hex()}
        except Exception:  # typed data eth_account cannot encode either: any digest will do
            fields = {**fields, "digest": "0x" + "00" * 32}
    refund = Refund.from_dict(refund_json(typed, owner=owner.address.lower(), **fields))
    # When it is checked, or signed, Then it is refused, saying why, and nothing is signed
    with pytest.raises(RefundVerificationError, match=says):
        check_refund(refund, **keywords)
    with pytest.raises(RefundVerificationError, match=says):
        sign_refund(refund, owner.key, **keywords)


def test_a_refund_without_typed_data_is_refused(owner: LocalAccount) -> None:
    # A refund.* event's refund carries no typed data
    event_refund = Refund.from_dict({k: v for k, v in refund_json(owner=owner.address).items() if k != "typedData"})
    with pytest.raises(RefundVerificationError, match="no typed data"):
        sign_refund(event_refund, owner.key)


def test_a_custom_token_is_checked_at_the_decimals_given(owner: LocalAccount) -> None:
    # Given a refund on the dev chain, whose token the helper does not know
    refund = refund_for(owner, typed_data(chain_id=31337, token=OTHER), network="local")
    # When the merchant gives the decimals, Then it is checked at them
    assert check_refund(refund, decimals=6, expected_amount="12.5") == eth_account_digest(dict(refund.raw["typedData"]))
    with pytest.raises(RefundVerificationError, match="amount"):
        check_refund(refund, decimals=7)
    with pytest.raises(ValueError, match="decimals"):
        check_refund(refund, decimals=-1)


def test_amounts_are_exact_whatever_the_decimal_context(owner: LocalAccount) -> None:
    # Given a BSC refund (18 decimals) whose amount has more digits than the context keeps
    units = 12_345_678_901_234_567_890_123_456_789_012
    bsc_usdt = "0x55d398326f99059ff775485246999027b3197955"
    refund = refund_for(
        owner,
        typed_data(chain_id=56, token=bsc_usdt, amount=str(units)),
        network="bsc",
        amount="12345678901234.567890123456789012",
    )
    # When it is checked under a caller's context of 5 digits, Then the amount is compared exactly
    with localcontext() as context:
        context.prec = 5
        assert check_refund(refund, expected_amount="12345678901234.567890123456789012") == refund_digest(
            typed_data(chain_id=56, token=bsc_usdt, amount=str(units))
        )
        with pytest.raises(RefundVerificationError, match="expected_amount"):
            check_refund(refund, expected_amount="12345678901234.567890123456789013")


def test_the_deadline_is_checked_against_the_time_given(owner: LocalAccount) -> None:
    refund = refund_for(owner, typed_data(deadline=1764720000))
    assert check_refund(refund, now=1764720000) == refund_digest(typed_data(deadline=1764720000))
    with pytest.raises(RefundVerificationError, match="has passed"):
        check_refund(refund, now=1764720001)


@pytest.mark.parametrize("amount", [12.5, True])
def test_an_expected_amount_that_is_not_exact_is_refused(owner: LocalAccount, amount: Any) -> None:
    with pytest.raises(TypeError):
        check_refund(refund_for(owner), expected_amount=amount)


# --- KMS / HSM --------------------------------------------------------------------------------


def _der(r: int, s: int) -> bytes:
    def integer(value: int) -> bytes:
        body = value.to_bytes(33, "big").lstrip(b"\x00")
        body = b"\x00" + body if body[0] & 0x80 else body
        return bytes([0x02, len(body)]) + body

    content = integer(r) + integer(s)
    return bytes([0x30, len(content)]) + content


def test_a_der_signature_becomes_the_owners_r_s_v(owner: LocalAccount) -> None:
    # Given the checked digest of a refund, signed by the owner's key outside (DER, as KMS answers)
    refund = refund_for(owner)
    digest = check_refund(refund, expected_to=PAYER)
    key = coincurve.PrivateKey(bytes(owner.key))
    der = key.sign(digest, hasher=None)
    # When it is turned into r || s || v, also from its high-s twin
    signature = signature_from_der(der, digest, owner.address)
    signed = Account.unsafe_sign_hash(digest, owner.key)
    twin = _der(signed.r, SECP256K1_N - signed.s)
    # Then it recovers to the owner, as the gateway checks it, and both forms give it
    assert coincurve_recover(signature, digest) == owner.address.lower()
    assert signature_from_der(twin, digest, owner.address) == "0x" + bytes(signed.signature).hex() == signature


def test_a_der_signature_by_another_key_or_of_another_digest_is_refused(owner: LocalAccount) -> None:
    digest = secrets.token_bytes(32)
    der = coincurve.PrivateKey().sign(digest, hasher=None)
    with pytest.raises(RefundVerificationError, match="does not recover to the owner"):
        signature_from_der(der, digest, owner.address)
    mine = coincurve.PrivateKey(bytes(owner.key)).sign(digest, hasher=None)
    with pytest.raises(RefundVerificationError, match="does not recover to the owner"):
        signature_from_der(mine, secrets.token_bytes(32), owner.address)


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30\x00", _der(1, 2)[:-1], _der(1, 2) + b"\x00", b"\x31" + _der(1, 2)[1:], bytes(65)],
)
def test_malformed_der_is_refused(der: bytes) -> None:
    with pytest.raises(ValueError, match="DER"):
        signature_from_der(der, bytes(32), OTHER)


# --- without eth_account ----------------------------------------------------------------------


def test_signing_without_eth_account_says_how_to_install_it(
    owner: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given eth_account cannot be imported
    for name in [m for m in sys.modules if m == "eth_account" or m.startswith("eth_account.")]:
        monkeypatch.setitem(sys.modules, name, None)
    refund = refund_for(owner)
    # When a refund is signed, Then an ImportError says which extra to install
    with pytest.raises(ImportError, match=r"usdt-gateway-client\[signing\]"):
        sign_refund(refund, owner.key)
    # And the checks and the digest, for a KMS or HSM signer, work without it
    assert check_refund(refund) == refund_digest(typed_data())


def test_the_digest_and_checks_need_only_the_standard_library() -> None:
    # Given an interpreter without site-packages (-S -I): the SDK and the standard library only
    refund = refund_json()
    script = f"""
import json, sys
sys.path.insert(0, {str(SDK)!r})
from usdt_gateway_client import Refund
from usdt_gateway_client.refunds import check_refund, refund_digest, sign_refund
refund = Refund.from_dict(json.loads({json.dumps(json.dumps(refund))}))
print(refund_digest(refund.typed_data).hex(), check_refund(refund, expected_to={PAYER!r}).hex())
try:
    sign_refund(refund, "0x" + "01" * 32)
except ImportError as exc:
    print(exc)
"""
    done = subprocess.run(  # noqa: S603  # this interpreter, fixed arguments
        [sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, check=False
    )
    # Then it computes and checks the digest, and signing says what it needs
    assert done.returncode == 0, done.stderr
    digests, message = done.stdout.strip().split("\n")
    assert digests == f"{refund['digest'][2:]} {refund['digest'][2:]}"
    assert 'pip install "usdt-gateway-client[signing]"' in message


def test_eth_account_is_an_optional_extra() -> None:
    project = tomllib.loads((SDK / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["dependencies"] == []
    assert [d.split(">=")[0] for d in project["optional-dependencies"]["signing"]] == ["eth-account"]
