"""Deposit addresses of contract mode, computed offline: the CREATE2 address (EIP-1014) of a
deposit clone under a merchant's DepositFactory, and the salt of each order.

    address = keccak256(prefix ‖ deployer ‖ salt ‖ keccak256(init_code))[12:]

The prefix is 0xff on EVM chains and 0x41 on Tron's TVM (TIP-26). No RPC call and no web3: the
API computes an order's address at creation with pycryptodome's keccak only.
"""

from __future__ import annotations

from Crypto.Hash import keccak

from usdt_gateway.address_codec import tron_address_from_body, tron_body20

EVM_PREFIX = b"\xff"
TRON_PREFIX = b"\x41"

# The init code of Vyper's `create_minimal_proxy_to` (what DepositFactory deploys): a 9-byte
# loader, then the 45-byte EIP-1167 runtime that delegates to the implementation.
_PROXY_HEAD = bytes.fromhex("602d3d8160093d39f3363d3d373d3d3d363d73")
_PROXY_TAIL = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")

# Versioned, so a future derivation cannot collide with this one.
_SALT_TAG = b"usdt-gateway/deposit-salt/v1"


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def _address_bytes(address: str | bytes) -> bytes:
    raw = address if isinstance(address, bytes) else bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"an address is 20 bytes, got {len(raw)}")
    return raw


def create2_address(deployer: str | bytes, salt: bytes, init_code_hash: bytes, *, prefix: bytes = EVM_PREFIX) -> bytes:
    """The 20-byte address CREATE2 gives `deployer` for `salt` and this init code hash. On Tron
    pass `prefix=TRON_PREFIX` and a 20-byte deployer body (the base58 address without its 0x41);
    encode the result as a Tron address with the 0x41 prefix."""
    if len(salt) != 32 or len(init_code_hash) != 32:
        raise ValueError("salt and init code hash are 32 bytes each")
    return keccak256(prefix + _address_bytes(deployer) + salt + init_code_hash)[12:]


def clone_init_code(implementation: str | bytes) -> bytes:
    """The init code of a minimal clone of `implementation`, as DepositFactory deploys it."""
    return _PROXY_HEAD + _address_bytes(implementation) + _PROXY_TAIL


def deposit_address(
    factory: str | bytes, implementation: str | bytes, salt: bytes, *, prefix: bytes = EVM_PREFIX
) -> bytes:
    """The deposit address of `salt` under `factory`, whose deposits clone `implementation`;
    equal to `factory.deposit_address(salt)` on chain, deployed or not."""
    return create2_address(factory, salt, keccak256(clone_init_code(implementation)), prefix=prefix)


def tron_deposit_address(factory: str, implementation: str, salt: bytes) -> str:
    """The Tron deposit address (base58check, `T...`) of `salt` under a factory on TVM: the same
    clone and salt as on EVM chains, with the 0x41 CREATE2 prefix. `factory` and `implementation`
    are Tron addresses (`T...` or `41...` hex); TVM code holds their 20-byte bodies, so the clone's
    init code embeds the implementation without its 0x41."""
    body = deposit_address(tron_body20(factory), tron_body20(implementation), salt, prefix=TRON_PREFIX)
    return tron_address_from_body(body)


def order_salt(merchant_id: str, order_id: str) -> bytes:
    """The CREATE2 salt of an order's deposit address:

        keccak256("usdt-gateway/deposit-salt/v1" ‖ 0x00 ‖ merchant_id ‖ 0x00 ‖ order_id)

    One address per order, stable across retries of the create call. The merchant's id is part
    of it so two merchants sharing a factory still never share an address; the zero bytes keep
    ("ab", "c") and ("a", "bc") apart (ids hold no NUL)."""
    if "\x00" in merchant_id or "\x00" in order_id:
        raise ValueError("ids must not contain NUL")
    return keccak256(b"\x00".join((_SALT_TAG, merchant_id.encode(), order_id.encode())))
