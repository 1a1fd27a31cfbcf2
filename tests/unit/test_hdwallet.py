import os
from typing import Literal

import pytest
from bip_utils import Bip44, Bip44Changes, Bip44Coins

from usdt_gateway.address_codec import b58check_decode, b58check_encode
from usdt_gateway.hdwallet import ACCOUNT_DEPTH, derive_address, parse_xpub

# BIP44 account xpubs for the "abandon x11 about" mnemonic (bip_utils' BIP44 test vectors).
ETH_XPUB = (
    "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3yZdUsT8ddYM3PwnATt"
)
TRX_XPUB = (
    "xpub6D1AabNHCupeiLM65ZR9UStMhJ1vCpyV4XbZdyhMZBiJXALQtmn9p42VTQckoHVn8WNqS7dqnJokZHAHcHGoaQgmv8D45oNUKx6DZMNZBCd"
)
INDEXES = [0, 1, 2, 19, 1000, 2**31 - 1]


def test_eth_vectors() -> None:
    # Given the public ETH account xpub
    # When the first two external addresses are derived
    first, second = derive_address(ETH_XPUB, "evm", 0), derive_address(ETH_XPUB, "evm", 1)
    # Then they match the published vectors, in EIP-55 form
    assert first == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    assert second == "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0"


def test_trx_vectors() -> None:
    # Given the public TRX account xpub
    # When the first two external addresses are derived
    first, second = derive_address(TRX_XPUB, "tron", 0), derive_address(TRX_XPUB, "tron", 1)
    # Then they match the published vectors, in base58
    assert first == "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
    assert second == "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"


def test_parse_xpub_fields() -> None:
    # Given the ETH account xpub
    # When it is parsed
    key = parse_xpub(ETH_XPUB)
    # Then it is a hardened account-level node with a compressed public key
    assert key.depth == ACCOUNT_DEPTH
    assert key.child_number == 2**31  # account 0'
    assert len(key.chain_code) == 32 and len(key.parent_fingerprint) == 4
    assert len(key.public_key) == 33 and key.public_key[0] in (2, 3)


@pytest.mark.parametrize(("coin", "family"), [(Bip44Coins.ETHEREUM, "evm"), (Bip44Coins.TRON, "tron")])
def test_matches_bip_utils_for_random_seed(coin: Bip44Coins, family: Literal["evm", "tron"]) -> None:
    # Given an account built by bip_utils from a seed drawn now, so each run checks new keys
    account = Bip44.FromSeed(os.urandom(64), coin).Purpose().Coin().Account(0)
    xpub = account.PublicKey().ToExtended()
    external = account.Change(Bip44Changes.CHAIN_EXT)
    # When addresses are derived from its xpub alone
    ours = [derive_address(xpub, family, i) for i in INDEXES]
    # Then they equal bip_utils' addresses, which it derives from the private key
    assert ours == [external.AddressIndex(i).PublicKey().ToAddress() for i in INDEXES]


def test_rejects_xprv() -> None:
    # Given an account-level extended private key
    xprv = Bip44.FromSeed(os.urandom(64), Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).PrivateKey().ToExtended()
    # When / Then it is refused with advice never to hand over a private key
    with pytest.raises(ValueError, match="never give the gateway a private key"):
        parse_xpub(xprv)


def test_rejects_private_key_behind_xpub_version() -> None:
    # Given an xprv payload relabelled with xpub version bytes, so only the key byte betrays it
    xprv = Bip44.FromSeed(os.urandom(64), Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).PrivateKey().ToExtended()
    disguised = b58check_encode(bytes.fromhex("0488B21E") + b58check_decode(xprv)[4:])
    assert disguised.startswith("xpub")
    # When / Then it is still refused as a private key
    with pytest.raises(ValueError, match="private key"):
        parse_xpub(disguised)


def test_rejects_master_xpub() -> None:
    # Given a depth-0 (master) xpub
    master = Bip44.FromSeed(os.urandom(64), Bip44Coins.ETHEREUM).PublicKey().ToExtended()
    # When / Then the message names the account-level paths expected
    with pytest.raises(ValueError, match=r"depth 0.*m/44'/60'/0'.*m/44'/195'/0'"):
        parse_xpub(master)


def test_rejects_change_level_xpub() -> None:
    # Given a depth-4 xpub (the external chain node, one level too deep)
    account = Bip44.FromSeed(os.urandom(64), Bip44Coins.ETHEREUM).Purpose().Coin().Account(0)
    change = account.Change(Bip44Changes.CHAIN_EXT).PublicKey().ToExtended()
    # When / Then it is refused
    with pytest.raises(ValueError, match="depth 4"):
        parse_xpub(change)


def test_rejects_bad_checksum() -> None:
    # Given the ETH xpub with its last character changed
    tampered = ETH_XPUB[:-1] + ("u" if ETH_XPUB[-1] != "u" else "v")
    # When / Then the checksum catches it
    with pytest.raises(ValueError, match="checksum"):
        parse_xpub(tampered)


def test_rejects_testnet_tpub() -> None:
    # Given the ETH account key re-encoded with testnet tpub version bytes
    tpub = b58check_encode(bytes.fromhex("043587CF") + b58check_decode(ETH_XPUB)[4:])
    # When / Then only mainnet xpub is accepted
    with pytest.raises(ValueError, match="0488B21E"):
        parse_xpub(tpub)


@pytest.mark.parametrize("garbage", ["", "hello", "xpub", "0" * 111, "xpub6DCoCpSu Q", ETH_XPUB[:60], ETH_XPUB + "1"])
def test_rejects_garbage(garbage: str) -> None:
    # Given / When / Then anything that is not a serialized extended key is a ValueError
    with pytest.raises(ValueError, match="not a valid extended public key"):
        parse_xpub(garbage)


@pytest.mark.parametrize("index", [-1, 2**31, 2**64, True])
def test_rejects_out_of_range_index(index: int) -> None:
    # Given / When / Then hardened, negative or non-integer indexes are refused
    with pytest.raises(ValueError, match="index must be an integer"):
        derive_address(ETH_XPUB, "evm", index)


def test_rejects_unknown_family() -> None:
    # Given / When / Then only the two supported address families are derived
    with pytest.raises(ValueError, match="unknown chain family"):
        derive_address(ETH_XPUB, "btc", 0)  # type: ignore[arg-type]
