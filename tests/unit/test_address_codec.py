import os

import pytest
from coincurve import PrivateKey
from tronpy import keys as tron_keys

from usdt_gateway.address_codec import (
    b58check_encode,
    b58decode,
    b58encode,
    keccak256,
    normalize_evm_address,
    normalize_tron_address,
    pubkey_to_evm_address,
    pubkey_to_tron_address,
    to_checksum_address,
    tron_address_from_body,
    tron_body20,
)

# The test vectors listed in EIP-55 itself.
EIP55_VECTORS = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]
USDT_TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDT_TRON_HEX = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"


def _flip_case_of_first_letter(address: str) -> str:
    i = next(i for i, c in enumerate(address) if i >= 2 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1 :]


def test_keccak256_is_not_sha3() -> None:
    # Given / When the empty string is hashed
    # Then the result is Ethereum's keccak256, which differs from NIST SHA3-256
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_base58_round_trip_keeps_leading_zeros() -> None:
    # Given bytes with leading zero bytes
    data = b"\0\0" + os.urandom(30)
    # When encoded and decoded
    encoded = b58encode(data)
    # Then each zero byte is a leading "1" and the round trip is exact
    assert encoded.startswith("11")
    assert b58decode(encoded) == data


@pytest.mark.parametrize("vector", EIP55_VECTORS)
def test_eip55_vectors(vector: str) -> None:
    # Given an EIP-55 vector written in lowercase
    # When checksummed, and when the vector itself is normalized
    # Then both give the vector back
    assert to_checksum_address("0x" + vector[2:].lower()) == vector
    assert to_checksum_address(bytes.fromhex(vector[2:])) == vector
    assert normalize_evm_address(vector) == vector


@pytest.mark.parametrize("vector", EIP55_VECTORS[4:])
def test_single_case_input_is_accepted(vector: str) -> None:
    # Given a mixed-case address written all lowercase and all uppercase (no checksum to check)
    lower, upper = "0x" + vector[2:].lower(), "0x" + vector[2:].upper()
    # When / Then both normalize to the EIP-55 form
    assert normalize_evm_address(lower) == vector
    assert normalize_evm_address(upper) == vector


@pytest.mark.parametrize("vector", EIP55_VECTORS[4:])
def test_wrong_eip55_checksum_is_rejected(vector: str) -> None:
    # Given a valid EIP-55 address with one letter's case flipped
    mistyped = _flip_case_of_first_letter(vector)
    # When / Then it is refused as a probable typo
    with pytest.raises(ValueError, match="invalid EIP-55 checksum"):
        normalize_evm_address(mistyped)


@pytest.mark.parametrize(
    "bad",
    ["", "0x", "0x1234", EIP55_VECTORS[4][2:], "0X" + EIP55_VECTORS[4][2:], EIP55_VECTORS[4] + "00", "0x" + "g" * 40],
)
def test_malformed_evm_address_is_rejected(bad: str) -> None:
    # Given / When / Then anything but "0x" + 40 hex digits is refused
    with pytest.raises(ValueError, match="40 hex digits"):
        normalize_evm_address(bad)


def test_tron_usdt_contract_both_ways() -> None:
    # Given the USDT contract in base58 and in hex
    # When each is normalized
    # Then both give the base58 form, and the body is the hex without 0x41
    assert normalize_tron_address(USDT_TRON) == USDT_TRON
    assert normalize_tron_address(USDT_TRON_HEX) == USDT_TRON
    assert normalize_tron_address(USDT_TRON_HEX.upper()) == USDT_TRON
    assert tron_body20(USDT_TRON) == bytes.fromhex(USDT_TRON_HEX[2:])
    assert tron_address_from_body(bytes.fromhex(USDT_TRON_HEX[2:])) == USDT_TRON


def test_tron_bad_checksum_is_rejected() -> None:
    # Given the USDT address with its last character changed
    mistyped = USDT_TRON[:-1] + "u"
    # When / Then the checksum catches it, as a ValueError (not a library-specific error)
    with pytest.raises(ValueError, match="checksum"):
        normalize_tron_address(mistyped)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "34 base58 characters"),
        (USDT_TRON[:-1], "34 base58 characters"),
        ("A" + USDT_TRON[1:], "34 base58 characters"),
        ("T" + "0" * 33, "not a base58 character"),
        ("T" + "l" * 33, "not a base58 character"),
        ("42" + USDT_TRON_HEX[2:], "34 base58 characters"),
        (None, "must be a string"),
        (b"T", "must be a string"),
    ],
)
def test_malformed_tron_address_is_rejected(bad: str, reason: str) -> None:
    # Given / When / Then every malformed input is a ValueError with a readable reason
    with pytest.raises(ValueError, match=reason):
        normalize_tron_address(bad)


def test_tron_wrong_version_byte_is_rejected() -> None:
    # Given a well-formed base58check string of 34 characters whose version byte is not 0x41
    other = next(
        a for v in range(0x42, 0x100) if len(a := b58check_encode(bytes([v]) + b"\x11" * 20)) == 34 and a[0] == "T"
    )
    # When / Then it is refused as a non-Tron address
    with pytest.raises(ValueError, match="version byte 0x41"):
        normalize_tron_address(other)


@pytest.mark.parametrize("run", range(5))
def test_matches_tronpy_for_random_keys(run: int) -> None:
    # Given a random key pair, known to tronpy by its 64-byte raw public key
    secret = PrivateKey()
    tronpy_key = tron_keys.PublicKey(secret.public_key.format(compressed=False)[1:])
    expected = tronpy_key.to_base58check_address()
    # When our codec converts the compressed and uncompressed forms
    compressed = pubkey_to_tron_address(secret.public_key.format(compressed=True))
    uncompressed = pubkey_to_tron_address(secret.public_key.format(compressed=False))
    # Then it agrees with tronpy on the address and on the base58 <-> hex conversion
    assert compressed == uncompressed == expected
    assert normalize_tron_address(tronpy_key.to_hex_address()) == expected
    assert tron_body20(expected).hex() == tron_keys.to_hex_address(expected)[2:]
    # And the EVM address of the same key has the same 20-byte body
    assert bytes.fromhex(pubkey_to_evm_address(secret.public_key.format(compressed=True))[2:]) == tron_body20(expected)


@pytest.mark.parametrize("bad", [b"", b"\x02" * 32, b"\x05" + b"\x01" * 32, b"\x04" + b"\x00" * 64])
def test_invalid_public_key_is_rejected(bad: bytes) -> None:
    # Given / When / Then a wrong length or a point off the curve never becomes an address
    with pytest.raises(ValueError):
        pubkey_to_evm_address(bad)
