"""The development wallet: a BIP39 mnemonic kept in the state dir, and its account xpubs: account
0 for the demo merchant, EVM account 1 for the demo merchant in xpub mode whose money the offline
sweep tool moves (`python -m devstack sweep`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Family = Literal["evm", "tron"]
WALLET_PATHS: dict[Family, str] = {"evm": "m/44'/60'/0'", "tron": "m/44'/195'/0'"}
WALLET_FILE = "dev-wallet.json"
# The BIP44 account of the xpub demo merchant's addresses (the sweep tool's --account): apart from
# account 0, so that the two demo merchants never share an address.
SWEEP_DEMO_ACCOUNT = 1


@dataclass(frozen=True)
class DevWallet:
    """The account-level xpubs the demo merchants are configured with (public keys only)."""

    xpubs: dict[Family, str]  # account 0: the demo merchant's
    sweep_demo_xpub: str  # EVM account SWEEP_DEMO_ACCOUNT: the xpub demo merchant's


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the owner only, replacing the file atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    tmp.replace(path)


def dev_wallet(state_dir: Path) -> DevWallet:
    """The development wallet's account xpubs: its mnemonic is made at first start and kept in
    state_dir/dev-wallet.json, so the deposit addresses stay the same from one start to the next.
    Only public keys are derived here; the sweep tool derives private keys when it runs."""
    from bip_utils import Bip39MnemonicGenerator, Bip39MnemonicValidator, Bip39SeedGenerator, Bip39WordsNum, Bip44
    from bip_utils import Bip44Coins as Coins

    path = state_dir / WALLET_FILE
    saved: dict[str, Any] = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            mnemonic = str(saved["mnemonic"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"{path} is not a development wallet ({exc}); move it away to get a new one") from exc
        if not Bip39MnemonicValidator().IsValid(mnemonic):
            raise RuntimeError(f"{path}: the mnemonic is not a valid BIP39 mnemonic; move the file away")
    else:
        mnemonic = Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_24).ToStr()
    seed = Bip39SeedGenerator(mnemonic).Generate()
    coins: dict[Family, Any] = {"evm": Coins.ETHEREUM, "tron": Coins.TRON}
    coin_keys = {family: Bip44.FromSeed(seed, coin).Purpose().Coin() for family, coin in coins.items()}
    xpubs: dict[Family, str] = {family: key.Account(0).PublicKey().ToExtended() for family, key in coin_keys.items()}
    sweep_demo_xpub = coin_keys["evm"].Account(SWEEP_DEMO_ACCOUNT).PublicKey().ToExtended()
    wallet = {
        "warning": "Development wallet of the local stack, test only. Never send real funds to its addresses.",
        "mnemonic": mnemonic,
        "evmPath": WALLET_PATHS["evm"],
        "evmXpub": xpubs["evm"],
        "tronPath": WALLET_PATHS["tron"],
        "tronXpub": xpubs["tron"],
        "sweepDemoEvmPath": f"m/44'/60'/{SWEEP_DEMO_ACCOUNT}'",
        "sweepDemoEvmXpub": sweep_demo_xpub,
    }
    if saved != wallet:
        write_private(path, wallet)
    return DevWallet(xpubs, sweep_demo_xpub)
