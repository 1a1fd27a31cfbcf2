"""What the payer's wallet scans: an EIP-681 transfer request on EVM chains, a bare address on Tron.

EVM: `ethereum:<token>@<chainId>/transfer?address=<recipient>&uint256=<base units>`. The amount
is written as plain integer digits in the token's base units (valid EIP-681; the exponent form
such as `12.5e6` is only "encouraged"), so nothing here ever touches a float.

Wallet support varies (chains.md §5, citing ERC-681 and the MetaMask/Uniswap/Trezor issues):
MetaMask Mobile read `uint256` as display units until a 2020 fix, a 2023 report says some apps
still show raw units, and several wallets added ERC-681 late or only partially. So the checkout
must also show network, token contract and exact amount as copyable text; the URI is a shortcut.

Tron has no standard payment URI; `tron:`/`trc20:` prefixes are not parsed by every wallet. Like
bepusdt, the QR holds just the base58 recipient and the amount is shown next to it.
"""

from __future__ import annotations

from usdt_gateway.address_codec import normalize_evm_address, normalize_tron_address


def payment_uri(*, family: str, token_contract: str, chain_id: int, recipient: str, amount_base_units: int) -> str:
    """The QR payload for one order; `token_contract` and `chain_id` are unused for Tron."""
    if not isinstance(amount_base_units, int) or isinstance(amount_base_units, bool) or amount_base_units <= 0:
        raise ValueError("amount_base_units must be a positive integer")
    if family == "evm":
        if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
            raise ValueError("chain_id must be a positive integer")
        token, to = normalize_evm_address(token_contract), normalize_evm_address(recipient)
        return f"ethereum:{token}@{chain_id}/transfer?address={to}&uint256={amount_base_units}"
    if family == "tron":
        return normalize_tron_address(recipient)
    raise ValueError(f"unknown chain family {family!r}; expected 'evm' or 'tron'")
