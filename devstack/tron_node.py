"""A fake Tron full node for the dev stack and the tests: a loopback HTTP server that answers the
java-tron full-node HTTP API (`/wallet/*`, `/walletsolidity/*`) from an in-memory chain driven
from Python. Responses follow java-tron's wire format, quirks included:

- protobuf-JSON drops default values: a zero field is absent, a top-level `"result"` appears
  only as `"FAILED"`, `transactions` is absent from an empty block;
- with `visible=false` (the default) addresses are hex with the `41` prefix, except
  `log[].address`, which is the bare 20-byte hex; with `visible=true` all of them are base58;
- `gettransactioninfobyblocknum` returns a JSON array (`[]` for an empty or unknown block,
  `{}` for num <= 0); a missing block or transaction is `{}`; errors are `{"Error": ...}` with
  HTTP 200;
- `/walletsolidity/*` only serves blocks at or below the solidified head, and answers a token's
  `balanceOf` (`triggerconstantcontract`) from the solidified state.

    with start_tron_node() as node:
        n = node.add_block([Trc20Transfer(USDT, sender, recipient, 5_000_000)])
        client = Tron(HTTPProvider(node.url))
        client.provider.make_request("wallet/gettransactioninfobyblocknum", {"num": n})

Development and test tooling only: the gateway's own code never imports this module.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tronpy.keys import to_base58check_address, to_hex_address

HOST = "127.0.0.1"
BLOCK_INTERVAL_MS = 3000
SOLID_LAG = 19  # a block is solid once 19 distinct SRs built on it: head - 19 in a steady chain
WITNESS_COUNT = 27
HANG_SECONDS = 30.0  # how long a "timeout" fault holds the connection before dropping it

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_SELECTOR = "a9059cbb"  # transfer(address,uint256)
# The call a contract that moves tokens for its caller receives; the token's log is the same.
CONTRACT_CALL_SELECTOR = "0a3b0a4f"
SWEEP_SELECTOR = "faa89528"  # keccak256("sweep(address,bytes32[])")[:4]
BALANCE_OF_SELECTOR = "70a08231"  # keccak256("balanceOf(address)")[:4]
# The init code of a deposit clone as Vyper's create_minimal_proxy_to deploys it: a 9-byte loader,
# then EIP-1167's runtime delegating to the implementation (written here apart from the gateway's
# create2.py, so the node's CREATE2 addresses check the gateway's rather than repeat them).
CLONE_HEAD = "602d3d8160093d39f3363d3d373d3d3d363d73"
CLONE_TAIL = "5af43d82803e903d91602b57fd5bf3"
# keccak256("Swept(address,address,uint256)"): Swept(token indexed, deposit indexed, amount)
SWEPT_TOPIC = "7b09c29f9106defeccc9ac3b823f3aad0b470d120e5df7aed033b5c43a4bf718"
# The factory's refund, written out here apart from the gateway's refund_signing.py so the node's
# check of an owner's signature checks the gateway's digest rather than repeat it.
REFUND_SIGNATURE = "refund(address,bytes32,address,uint256,uint256,uint256,bytes)"
REFUNDED_EVENT = "Refunded(address,address,address,uint256,uint256)"
EIP712_DOMAIN = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
REFUND_STRUCT = "Refund(address token,bytes32 salt,address to,uint256 amount,uint256 nonce,uint256 deadline)"
DOMAIN_NAME, DOMAIN_VERSION = "USDT Gateway Deposits", "1"
SECP256K1_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2
SUCCESS_WORD = "00" * 31 + "01"
REVERT_MESSAGE = "REVERT opcode executed"
TRX_NET_FEE = 267_000
ENERGY_PRICE_SUN = 100
NET_FEE_PER_BYTE = 1_000  # sun per byte of bandwidth burned (getBandwidthPrice ... 1000)
FREE_NET_LIMIT = 600  # free bandwidth per account and day
# Tron's chain id is the last 4 bytes of the genesis block id (mainnet 0x2b6653dc, Nile 0xcd8690dc),
# as java-tron's eth_chainId answers it.
MAINNET_CHAIN_ID = 728_126_428

# TronGrid's body for a request over its per-second limit.
RATE_LIMIT_BODY = {"Error": "The key exceeds the frequency limit(15), and the query server is suspended for 27 s"}

Fault = int | Literal["timeout"]
JsonValue = Any


# -- transfers a block is built from ------------------------------------------------------------


@dataclass(frozen=True)
class Trc20Transfer:
    """A TRC-20 `Transfer(sender, recipient, amount)` emitted by `contract`, in its own transaction.

    `failed` makes the transaction revert (`True` -> `REVERT`, or a result name such as
    `"OUT_OF_ENERGY"`): top-level `"result": "FAILED"`, no log. `via_contract` makes the transaction
    call that contract instead of the token (the token's log is unchanged, plus an internal
    transaction). `owner` signs the transaction (default `sender`)."""

    contract: str
    sender: str
    recipient: str
    amount: int
    failed: bool | str = False
    via_contract: str | None = None
    owner: str | None = None


@dataclass(frozen=True)
class TrxTransfer:
    """A plain TRX transfer (`TransferContract`, amount in sun): no logs, receipt `{"net_fee": ...}`."""

    sender: str
    recipient: str
    amount: int


@dataclass
class ContractCall:
    """A TriggerSmartContract transaction this node built (`wallet/triggersmartcontract`) and
    accepted signed (`wallet/broadcasttransaction`); mined in the next block added. No TVM runs
    here: `result` and `energy` say what its receipt reports (`SUCCESS`, `REVERT`, or
    `OUT_OF_ENERGY`, which burns the whole fee limit). A successful `sweep(token, salts)` moves
    each salt's deposit address's whole token balance to the factory's treasury (a factory
    registered with `TronNode.add_factory`) and logs the token's Transfer and the factory's
    Swept for it (`logs`, set when it is mined); `refund(...)` through a factory registered with
    its owner runs as the contract runs it (FakeChain._refund), or reverts; any other call moves
    nothing and logs nothing."""

    owner: str  # 41-hex
    contract: str  # 41-hex
    data: str
    fee_limit: int
    raw_data: dict[str, JsonValue]
    raw_data_hex: str
    txid: str
    signature: str = ""
    result: str = "SUCCESS"
    energy: int = 0
    logs: list[dict[str, JsonValue]] = field(default_factory=list)
    # Set when mined, from the owner's account resources: energy paid from staked energy
    # (receipt `energy_usage`) and whether bandwidth was burned (receipt `net_fee`).
    energy_staked: int = 0
    net_burned: bool = False


@dataclass
class FakeContract:
    """A contract the node holds (`add_contract`). No TVM runs here: `getcontract` returns its
    deployment `bytecode`, `getcontractinfo` its `runtime` code, and `triggerconstantcontract` asks
    `call(data) -> return data` (raising `ValueError` for a revert), which a test backs with
    anything that executes the code, e.g. the same build on anvil."""

    address: str  # 41-hex
    origin: str  # 41-hex, the deployer
    bytecode: str
    runtime: str
    name: str
    call: Callable[[bytes], bytes] | None = None


@dataclass
class AccountResources:
    """An account's Stake 2.0 resources as `getaccountresource` reports them; staked energy pays
    a mined call's energy first (the rest is burned at ENERGY_PRICE_SUN), and bandwidth is burned
    (NET_FEE_PER_BYTE) once free and staked bandwidth are used up."""

    energy_limit: int = 0
    energy_used: int = 0
    net_limit: int = 0
    net_used: int = 0
    free_net_limit: int = FREE_NET_LIMIT
    free_net_used: int = 0


@dataclass(frozen=True)
class FakeFactory:
    """A merchant's DepositFactory as far as a sweep and a refund need it (41-hex addresses): a
    salt's deposit address is the CREATE2 address of a clone of `implementation` under `address`
    (0x41 prefix), what a sweep moves goes to `treasury`, and a refund needs `owner`'s signature
    (no refund runs through a factory registered without one)."""

    address: str
    implementation: str
    treasury: str
    owner: str | None = None

    def deposit(self, salt: str) -> str:
        """The 41-hex deposit address of `salt` (hex)."""
        from Crypto.Hash import keccak

        def k(data: bytes) -> bytes:
            return keccak.new(digest_bits=256, data=data).digest()

        init_code = bytes.fromhex(CLONE_HEAD + self.implementation[2:] + CLONE_TAIL)
        return "41" + k(b"\x41" + bytes.fromhex(self.address[2:]) + bytes.fromhex(salt) + k(init_code))[12:].hex()


Transfer = Trc20Transfer | TrxTransfer | ContractCall

# Energy a broadcast call's receipt reports unless told otherwise: illustrative, about one USDT
# transfer to a holder plus a sweep's own work; what TVM really charges only a testnet run shows.
DEFAULT_CALL_ENERGY = 100_000
NET_USAGE = 345


# -- the chain ----------------------------------------------------------------------------------


@dataclass
class FakeTransaction:
    txid: str
    transfer: Transfer
    raw_data_hex: str
    signature: str
    expiration: int
    timestamp: int
    ref_block_bytes: str
    ref_block_hash: str
    internal_hash: str = ""

    @property
    def failed(self) -> str | None:
        """The failing contract result (e.g. `REVERT`), or None for a successful transaction."""
        if isinstance(self.transfer, Trc20Transfer) and self.transfer.failed:
            return "REVERT" if self.transfer.failed is True else str(self.transfer.failed)
        if isinstance(self.transfer, ContractCall) and self.transfer.result != "SUCCESS":
            return self.transfer.result
        return None


@dataclass
class FakeBlock:
    number: int
    block_id: str
    parent_hash: str
    timestamp: int
    witness: str  # 41-prefixed hex
    tx_trie_root: str
    witness_signature: str
    transactions: list[FakeTransaction] = field(default_factory=list)


def _hex41(address: str) -> str:
    """`T...`, `41...` or `0x...` -> lowercase 41-prefixed hex."""
    if address.startswith("0x"):
        return "41" + address[2:].lower()
    return str(to_hex_address(address)).lower()


def _addr(hex41: str, visible: bool) -> str:
    return str(to_base58check_address(hex41)) if visible else hex41


def _word(value: int | str) -> str:
    """A 32-byte ABI word: an int, or an address (41-hex) left-padded without its prefix."""
    if isinstance(value, int):
        return f"{value:064x}"
    return "00" * 12 + value[2:]


def _block_id(number: int) -> str:
    return f"{number:016x}" + secrets.token_hex(24)


def _witnesses() -> list[str]:
    return ["41" + hashlib.sha256(f"witness-{i}".encode()).hexdigest()[:40] for i in range(WITNESS_COUNT)]


class FakeChain:
    """The node's chain state. Every method is safe to call from the test thread while the server
    serves requests."""

    def __init__(
        self, *, start_timestamp: int | None = None, solid_lag: int = SOLID_LAG, chain_id: int = MAINNET_CHAIN_ID
    ) -> None:
        self._lock = threading.RLock()
        self.chain_id = chain_id
        self._witnesses = _witnesses()
        self.solid_lag = solid_lag
        self._solid_pin: int | None = None
        now = int(time.time() * 1000) // BLOCK_INTERVAL_MS * BLOCK_INTERVAL_MS
        genesis_ts = start_timestamp if start_timestamp is not None else now
        genesis = self._make_block(0, "00" * 32, genesis_ts, [])
        genesis.block_id = genesis.block_id[:-8] + f"{chain_id:08x}"
        self.blocks: list[FakeBlock] = [genesis]
        self.contracts: dict[str, FakeContract] = {}  # by 41-hex address
        self.accounts: dict[str, AccountResources] = {}  # by 41-hex address
        self.txs: dict[str, tuple[FakeTransaction, int]] = {}
        self.built: dict[str, ContractCall] = {}  # built by triggersmartcontract, by txid
        self.pending: list[ContractCall] = []  # broadcast, mined by the next add_block
        self.call_outcomes: list[tuple[str, int | None]] = []  # (result, energy) for the next broadcasts
        # Token balances: (token 41-hex, holder 41-hex) -> units; TRX balances of the accounts given
        # one (`fund_trx`), in sun. Each block keeps the balances it changed as they were before
        # it, so a reorg puts them back before the new blocks apply theirs.
        self.balances: dict[tuple[str, str], int] = {}
        self.tokens: set[str] = set()  # contracts whose balances are kept (balanceOf answers)
        self.trx: dict[str, int] = {}
        self._undo: dict[int, list[tuple[str, Any, int | None]]] = {}
        self.factories: dict[str, FakeFactory] = {}  # by 41-hex address
        # (factory 41-hex, salt hex) -> deposit 41-hex, given as is (`fund_deposit`), not computed
        self.deposit_of: dict[tuple[str, str], str] = {}
        # Refund nonces a factory spent: (factory 41-hex, nonce) -> 1; undone by a reorg as balances are.
        self.nonces: dict[tuple[str, int], int] = {}

    # state

    @property
    def head(self) -> int:
        with self._lock:
            return self.blocks[-1].number

    @property
    def solid(self) -> int:
        with self._lock:
            if self._solid_pin is not None:
                return min(self._solid_pin, self.head)
            return max(self.head - self.solid_lag, 0)

    def block(self, number: int) -> FakeBlock | None:
        with self._lock:
            return self.blocks[number] if 0 <= number < len(self.blocks) else None

    def block_by_id(self, block_id: str) -> FakeBlock | None:
        with self._lock:
            try:
                number = int(block_id[:16], 16)
            except ValueError:
                return None
            found = self.block(number)
            return found if found is not None and found.block_id == block_id.lower() else None

    def transaction(self, txid: str) -> tuple[FakeTransaction, FakeBlock] | None:
        with self._lock:
            entry = self.txs.get(txid.lower())
            if entry is None:
                return None
            return entry[0], self.blocks[entry[1]]

    # driving

    def add_block(self, transfers: Iterable[Transfer] = (), timestamp: int | None = None) -> int:
        with self._lock:
            parent = self.blocks[-1]
            number = parent.number + 1
            ts = timestamp if timestamp is not None else parent.timestamp + BLOCK_INTERVAL_MS
            listed = [*self.pending, *transfers]
            undo: list[tuple[str, Any, int | None]] = []
            for transfer in listed:  # in the block's order: a sweep moves what is there before it
                if isinstance(transfer, ContractCall):
                    if any(transfer is call for call in self.pending):  # broadcast to this node
                        self._charge(transfer)
                        transfer.logs = self._sweep(transfer, undo) or self._refund(transfer, undo, ts)
                        self._burn(transfer, undo)
                elif isinstance(transfer, Trc20Transfer) and not transfer.failed:
                    token = _hex41(transfer.contract)
                    self._move(token, _hex41(transfer.sender), _hex41(transfer.recipient), transfer.amount, undo)
                elif isinstance(transfer, TrxTransfer):
                    self._move_trx(_hex41(transfer.sender), _hex41(transfer.recipient), transfer.amount, undo)
            block = self._make_block(number, parent.block_id, ts, listed)
            self.pending = []
            self.blocks.append(block)
            self._undo[number] = undo
            for tx in block.transactions:
                self.txs[tx.txid] = (tx, number)
            return number

    # balances

    def balance(self, token: str, holder: str) -> int:
        with self._lock:
            return self.balances.get((_hex41(token), _hex41(holder)), 0)

    def balance_at(self, key: tuple[str, str], number: int) -> int:
        """A token balance (41-hex token, holder) as block `number` left it: the value before the
        first change any later block made (each block keeps those), else the current one."""
        with self._lock:
            for later in range(number + 1, self.head + 1):
                for kind, changed, before in self._undo.get(later, []):
                    if kind == "token" and changed == key:
                        return before or 0
            return self.balances.get(key, 0)

    def _book(self, kind: str) -> dict[Any, int]:
        return self.balances if kind == "token" else self.nonces if kind == "nonce" else self.trx

    def _set(self, kind: str, key: Any, value: int, undo: list[tuple[str, Any, int | None]]) -> None:
        book = self._book(kind)
        undo.append((kind, key, book.get(key)))
        book[key] = value

    def _move(
        self, token: str, sender: str, recipient: str, amount: int, undo: list[tuple[str, Any, int | None]]
    ) -> None:
        """A TRC-20 transfer's effect. Payers are often addresses the node never funded: a sender
        pays what it holds, the rest comes from nowhere (the recipient always gets `amount`)."""
        self.tokens.add(token)
        held = self.balances.get((token, sender), 0)
        self._set("token", (token, sender), held - min(held, amount), undo)
        self._set("token", (token, recipient), self.balances.get((token, recipient), 0) + amount, undo)

    def _move_trx(self, sender: str, recipient: str, amount: int, undo: list[tuple[str, Any, int | None]]) -> None:
        """A TRX transfer, kept only for accounts given a TRX balance (as `_move` for the sender)."""
        if sender in self.trx:
            self._set("trx", sender, self.trx[sender] - min(self.trx[sender], amount), undo)
        if recipient in self.trx:
            self._set("trx", recipient, self.trx[recipient] + amount, undo)

    def _burn(self, call: ContractCall, undo: list[tuple[str, Any, int | None]]) -> None:
        """The TRX a mined call burned (its receipt's `fee`), taken from its owner's balance when
        the owner has one. A balance too small to pay is not modelled: it goes down to nothing."""
        if call.owner in self.trx:
            fee = _call_fees(call)[2]
            self._set("trx", call.owner, self.trx[call.owner] - min(self.trx[call.owner], fee), undo)

    def _sweep(self, call: ContractCall, undo: list[tuple[str, Any, int | None]]) -> list[dict[str, JsonValue]]:
        """A successful `sweep(token, salts)`, as the DepositFactory runs it: each salt's deposit
        address (computed under a registered factory, or as `fund_deposit` named it) gives its
        whole token balance to the treasury. Its logs in TRON's shape (address without 41, hex
        without 0x): the token's Transfer and the factory's Swept, per deposit that held money."""
        if call.result != "SUCCESS" or not call.data.startswith(SWEEP_SELECTOR):
            return []
        args = call.data[len(SWEEP_SELECTOR) :]
        token = "41" + args[24:64]
        count = int(args[128:192], 16)
        salts = [args[192 + 64 * i : 256 + 64 * i] for i in range(count)]
        factory = self.factories.get(call.contract)
        logs: list[dict[str, JsonValue]] = []
        for salt in salts:
            deposit = self.deposit_of.get((call.contract, salt)) or (factory.deposit(salt) if factory else None)
            units = self.balances.get((token, deposit), 0) if deposit else 0
            if not deposit or not units:
                continue
            self._set("token", (token, deposit), 0, undo)
            if factory is not None:
                treasury = factory.treasury
                self._set("token", (token, treasury), self.balances.get((token, treasury), 0) + units, undo)
                logs.append(
                    {
                        "address": token[2:],
                        "topics": [TRANSFER_TOPIC, _word(deposit), _word(treasury)],
                        "data": _word(units),
                    }
                )
            logs.append(
                {
                    "address": call.contract[2:],
                    "topics": [SWEPT_TOPIC, _word(token), _word(deposit)],
                    "data": _word(units),
                }
            )
        return logs

    def refund_digest(self, factory: str, words: bytes) -> bytes:
        """The EIP-712 digest `factory` (41-hex) computes for refund words token ‖ salt ‖ to ‖
        amount ‖ nonce ‖ deadline (six ABI words), on this chain (its chain id, block.chainid)."""
        from Crypto.Hash import keccak

        def k(data: bytes) -> bytes:
            return keccak.new(digest_bits=256, data=data).digest()

        domain = k(
            k(EIP712_DOMAIN.encode())
            + k(DOMAIN_NAME.encode())
            + k(DOMAIN_VERSION.encode())
            + self.chain_id.to_bytes(32, "big")
            + bytes(12)
            + bytes.fromhex(factory[2:])
        )
        return k(b"\x19\x01" + domain + k(k(REFUND_STRUCT.encode()) + words[:192]))

    def _refund_refusal(self, factory: FakeFactory, args: bytes, timestamp_ms: int) -> str | None:
        """Why the factory's refund(...) reverts, checked in the contract's order; None if it runs."""
        from coincurve import PublicKey
        from Crypto.Hash import keccak

        if len(args) < 8 * 32:
            return "malformed call"
        nonce, deadline = int.from_bytes(args[128:160], "big"), int.from_bytes(args[160:192], "big")
        if timestamp_ms // 1000 > deadline:
            return "signature expired"
        if self.nonces.get((factory.address, nonce)):
            return "nonce already used"
        offset = int.from_bytes(args[192:224], "big")
        length = int.from_bytes(args[offset : offset + 32], "big") if offset + 32 <= len(args) else 0
        signature = args[offset + 32 : offset + 32 + length]
        if length != 65 or len(signature) != 65:
            return "signature is not 65 bytes"
        if int.from_bytes(signature[32:64], "big") > SECP256K1_HALF_N:
            return "signature s is high"
        if signature[64] not in (27, 28):
            return "signature v is not 27 or 28"
        try:
            point = PublicKey.from_signature_and_message(
                signature[:64] + bytes([signature[64] - 27]), self.refund_digest(factory.address, args), hasher=None
            ).format(compressed=False)
        except Exception:
            return "not signed by the owner"
        if "41" + keccak.new(digest_bits=256, data=point[1:]).hexdigest()[24:] != factory.owner:
            return "not signed by the owner"
        return None

    def _refund(
        self, call: ContractCall, undo: list[tuple[str, Any, int | None]], timestamp_ms: int
    ) -> list[dict[str, JsonValue]]:
        """`refund(token, salt, to, amount, nonce, deadline, signature)` through a factory
        registered with its owner, as DepositFactory runs it: the owner's signature recovered from
        the digest computed here, the nonce spent, `amount` moved from the salt's deposit address
        to `to`; the token's Transfer and the factory's Refunded logged. Anything the contract
        refuses (a passed deadline, a used nonce, another signer, less money than `amount`) makes
        the call REVERT."""
        factory = self.factories.get(call.contract)
        if call.result != "SUCCESS" or not call.data.startswith(_selector(REFUND_SIGNATURE)) or factory is None:
            return []
        args = bytes.fromhex(call.data[8:])
        reason = self._refund_refusal(factory, args, timestamp_ms) if factory.owner else "no owner registered"
        token, salt, to = "41" + args[12:32].hex(), args[32:64].hex(), "41" + args[76:96].hex()
        amount, nonce = int.from_bytes(args[96:128], "big"), int.from_bytes(args[128:160], "big")
        deposit = self.deposit_of.get((call.contract, salt)) or factory.deposit(salt)
        if reason is None and self.balances.get((token, deposit), 0) < amount:
            reason = "the deposit holds less than the amount"
        if reason is not None:
            call.result = "REVERT"
            return []
        self._set("nonce", (factory.address, nonce), 1, undo)
        self._set("token", (token, deposit), self.balances.get((token, deposit), 0) - amount, undo)
        self._set("token", (token, to), self.balances.get((token, to), 0) + amount, undo)
        return [
            {"address": token[2:], "topics": [TRANSFER_TOPIC, _word(deposit), _word(to)], "data": _word(amount)},
            {
                "address": call.contract[2:],
                "topics": [_selector_hash(REFUNDED_EVENT), _word(token), _word(deposit), _word(to)],
                "data": _word(amount) + _word(nonce),
            },
        ]

    def factory_view(self, factory: str, data: str) -> str | None:
        """A registered factory's `nonce_used(nonce)` or `refund_digest(...)` (head state), as a
        hex word; None for any other call."""
        with self._lock:
            if data[:8] == _selector("nonce_used(uint256)") and len(data) == 72:
                return _word(self.nonces.get((factory, int(data[8:], 16)), 0))
            if data[:8] == _selector("refund_digest(address,bytes32,address,uint256,uint256,uint256)"):
                return self.refund_digest(factory, bytes.fromhex(data[8:])).hex()
        return None

    def _charge(self, call: ContractCall) -> None:
        """Pay a mined call's energy from its owner's staked energy first, and its bandwidth from
        free or staked bandwidth if enough is left (else it is burned)."""
        account = self.accounts.get(call.owner)
        if account is None:  # an account without stake: energy burned, the free bandwidth pays
            return
        energy = _call_energy(call)
        call.energy_staked = min(energy, max(account.energy_limit - account.energy_used, 0))
        account.energy_used += call.energy_staked
        if account.free_net_limit - account.free_net_used >= NET_USAGE:
            account.free_net_used += NET_USAGE
        elif account.net_limit - account.net_used >= NET_USAGE:
            account.net_used += NET_USAGE
        else:
            call.net_burned = True

    def set_solid(self, number: int | None) -> None:
        """Pin the solidified head at `number`; None goes back to head - solid_lag."""
        with self._lock:
            if number is not None and not 0 <= number <= self.head:
                raise ValueError(f"solid head {number} outside 0..{self.head}")
            self._solid_pin = number

    def reorg(self, from_number: int, new_blocks: Sequence[Sequence[Transfer]] | int) -> int:
        """Replace blocks >= from_number with `new_blocks` (transfer lists, or a count of empty
        blocks), all with new block ids. Returns the new head."""
        with self._lock:
            if not 0 < from_number <= self.head:
                raise ValueError(f"reorg start {from_number} outside 1..{self.head}")
            if from_number <= self.solid:
                raise ValueError(f"block {from_number} is solidified (solid head {self.solid})")
            for dropped in reversed(self.blocks[from_number:]):
                for tx in dropped.transactions:
                    self.txs.pop(tx.txid, None)
                for kind, key, before in reversed(self._undo.pop(dropped.number, [])):
                    book = self._book(kind)
                    if before is None:
                        book.pop(key, None)
                    else:
                        book[key] = before
            next_ts = self.blocks[from_number].timestamp
            del self.blocks[from_number:]
            contents: Sequence[Sequence[Transfer]] = [[]] * new_blocks if isinstance(new_blocks, int) else new_blocks
            for i, transfers in enumerate(contents):
                self.add_block(transfers, timestamp=next_ts + i * BLOCK_INTERVAL_MS)
            return self.head

    def _make_block(self, number: int, parent_hash: str, timestamp: int, transfers: list[Transfer]) -> FakeBlock:
        block_id = _block_id(number)
        txs = [self._make_tx(t, parent_hash, timestamp) for t in transfers]
        trie = hashlib.sha256("".join(t.txid for t in txs).encode()).hexdigest() if txs else "00" * 32
        return FakeBlock(
            number=number,
            block_id=block_id,
            parent_hash=parent_hash,
            timestamp=timestamp,
            witness=self._witnesses[number % WITNESS_COUNT],
            tx_trie_root=trie,
            witness_signature=secrets.token_hex(65),
            transactions=txs,
        )

    @staticmethod
    def _make_tx(transfer: Transfer, parent_hash: str, block_ts: int) -> FakeTransaction:
        if isinstance(transfer, ContractCall):
            raw = transfer.raw_data
            return FakeTransaction(
                txid=transfer.txid,
                transfer=transfer,
                raw_data_hex=transfer.raw_data_hex,
                signature=transfer.signature,
                expiration=int(raw["expiration"]),
                timestamp=int(raw["timestamp"]),
                ref_block_bytes=str(raw["ref_block_bytes"]),
                ref_block_hash=str(raw["ref_block_hash"]),
            )
        raw_data_hex = "0a02" + secrets.token_hex(96)
        created = block_ts - 2000
        return FakeTransaction(
            txid=hashlib.sha256(bytes.fromhex(raw_data_hex)).hexdigest(),
            transfer=transfer,
            raw_data_hex=raw_data_hex,
            signature=secrets.token_hex(65),
            expiration=created + 60_000,
            timestamp=created,
            ref_block_bytes=parent_hash[12:16] if parent_hash else "0000",
            ref_block_hash=parent_hash[16:32] if parent_hash else "00" * 8,
            internal_hash=secrets.token_hex(32),
        )


# -- JSON rendering (java-tron shapes) ----------------------------------------------------------


def render_block(block: FakeBlock, visible: bool) -> dict[str, JsonValue]:
    raw: dict[str, JsonValue] = {}
    if block.number:  # protobuf-JSON omits zero: the genesis block has no "number"
        raw["number"] = block.number
    raw["txTrieRoot"] = block.tx_trie_root
    raw["witness_address"] = _addr(block.witness, visible)
    raw["parentHash"] = block.parent_hash
    raw["version"] = 34
    if block.timestamp:
        raw["timestamp"] = block.timestamp
    out: dict[str, JsonValue] = {
        "blockID": block.block_id,
        "block_header": {"raw_data": raw, "witness_signature": block.witness_signature},
    }
    if block.transactions:
        out["transactions"] = [render_transaction(tx, visible) for tx in block.transactions]
    return out


def render_transaction(tx: FakeTransaction, visible: bool) -> dict[str, JsonValue]:
    t = tx.transfer
    contract: dict[str, JsonValue]
    if isinstance(t, ContractCall):
        return {
            "ret": [{"contractRet": tx.failed or "SUCCESS"}],
            "signature": [tx.signature],
            "txID": tx.txid,
            "raw_data": _call_raw_data(t, visible),
            "raw_data_hex": tx.raw_data_hex,
        }
    if isinstance(t, TrxTransfer):
        value: dict[str, JsonValue] = {
            "amount": t.amount,
            "owner_address": _addr(_hex41(t.sender), visible),
            "to_address": _addr(_hex41(t.recipient), visible),
        }
        contract = {
            "parameter": {"value": value, "type_url": "type.googleapis.com/protocol.TransferContract"},
            "type": "TransferContract",
        }
        fee_limit = None
    else:
        token, recipient = _hex41(t.contract), _hex41(t.recipient)
        if t.via_contract is None:
            called = token
            data = TRANSFER_SELECTOR + _word(recipient) + _word(t.amount)
        else:
            called = _hex41(t.via_contract)
            data = CONTRACT_CALL_SELECTOR + _word(token) + _word(recipient) + _word(t.amount)
        value = {
            "data": data,
            "owner_address": _addr(_hex41(t.owner or t.sender), visible),
            "contract_address": _addr(called, visible),
        }
        contract = {
            "parameter": {"value": value, "type_url": "type.googleapis.com/protocol.TriggerSmartContract"},
            "type": "TriggerSmartContract",
        }
        fee_limit = 100_000_000
    raw: dict[str, JsonValue] = {
        "contract": [contract],
        "ref_block_bytes": tx.ref_block_bytes,
        "ref_block_hash": tx.ref_block_hash,
        "expiration": tx.expiration,
    }
    if fee_limit is not None:
        raw["fee_limit"] = fee_limit
    raw["timestamp"] = tx.timestamp
    return {
        "ret": [{"contractRet": tx.failed or "SUCCESS"}],
        "signature": [tx.signature],
        "txID": tx.txid,
        "raw_data": raw,
        "raw_data_hex": tx.raw_data_hex,
    }


def _energy_used(failed: str | None, via_contract: bool) -> int:
    """Illustrative energy: a USDT transfer to an existing holder, a bit more through a contract,
    little for an early revert, the whole limit when out of energy."""
    if failed:
        return 1_284 if failed == "REVERT" else 1_000_000
    return 91_502 if via_contract else 64_285


def render_transaction_info(tx: FakeTransaction, block: FakeBlock, visible: bool) -> dict[str, JsonValue]:
    t = tx.transfer
    head: dict[str, JsonValue] = {"id": tx.txid}
    if isinstance(t, ContractCall):
        return head | _call_info(t, block, visible)
    if isinstance(t, TrxTransfer):
        return head | {
            "fee": TRX_NET_FEE,
            "blockNumber": block.number,
            "blockTimeStamp": block.timestamp,
            "contractResult": [""],
            "receipt": {"net_fee": TRX_NET_FEE},
        }
    token = _hex41(t.contract)
    called = _hex41(t.via_contract) if t.via_contract else token
    failed = tx.failed
    energy = _energy_used(failed, t.via_contract is not None)
    energy_fee = energy * ENERGY_PRICE_SUN
    receipt: dict[str, JsonValue] = {
        "energy_fee": energy_fee,
        "energy_usage_total": energy,
        "net_usage": 345,
        "result": failed or "SUCCESS",
    }
    info = head | {
        "fee": energy_fee,
        "blockNumber": block.number,
        "blockTimeStamp": block.timestamp,
        "contractResult": [""] if failed else [SUCCESS_WORD],
        "contract_address": _addr(called, visible),
        "receipt": receipt,
    }
    if failed:
        message = REVERT_MESSAGE if failed == "REVERT" else f"Not enough energy for 'SSTORE' operation: {failed}"
        info["result"] = "FAILED"
        info["resMessage"] = message.encode().hex()
        return info
    log_address = str(to_base58check_address(token)) if visible else token[2:]
    info["log"] = [
        {
            "address": log_address,
            "topics": [TRANSFER_TOPIC, _word(_hex41(t.sender)), _word(_hex41(t.recipient))],
            "data": _word(t.amount),
        }
    ]
    if t.via_contract is not None:
        info["internal_transactions"] = [
            {
                "hash": tx.internal_hash,
                "caller_address": _addr(called, visible),
                "transferTo_address": _addr(token, visible),
                "callValueInfo": [{}],
                "note": b"call".hex(),
            }
        ]
    return info


def _call_raw_data(call: ContractCall, visible: bool) -> dict[str, JsonValue]:
    raw = json.loads(json.dumps(call.raw_data))
    value = raw["contract"][0]["parameter"]["value"]
    value["owner_address"] = _addr(call.owner, visible)
    value["contract_address"] = _addr(call.contract, visible)
    return dict(raw)


def _call_energy(call: ContractCall) -> int:
    """The energy a call's receipt reports: OUT_OF_ENERGY uses all the fee limit buys."""
    if call.result == "OUT_OF_ENERGY":
        return call.energy_staked + call.fee_limit // ENERGY_PRICE_SUN
    return call.energy or DEFAULT_CALL_ENERGY


def _call_fees(call: ContractCall) -> tuple[int, int, int]:
    """A mined call's sun burned for energy, for bandwidth, and both."""
    energy_fee = (_call_energy(call) - call.energy_staked) * ENERGY_PRICE_SUN
    net_fee = NET_USAGE * NET_FEE_PER_BYTE if call.net_burned else 0
    return energy_fee, net_fee, energy_fee + net_fee


def _call_info(call: ContractCall, block: FakeBlock, visible: bool) -> dict[str, JsonValue]:
    """A broadcast call's TransactionInfo. Energy comes from the owner's staked energy first
    (`energy_usage`), the rest is burned (`energy_fee`); `energy_usage_total` is both. Bandwidth
    is `net_usage` when free or staked bandwidth paid it, `net_fee` (sun) when burned. Zero fields
    are left out, as protobuf-JSON does."""
    energy = _call_energy(call)
    energy_fee, net_fee, _ = _call_fees(call)
    receipt: dict[str, JsonValue] = {}
    if call.energy_staked:
        receipt["energy_usage"] = call.energy_staked
    if energy_fee:
        receipt["energy_fee"] = energy_fee
    receipt["energy_usage_total"] = energy
    if net_fee:
        receipt["net_fee"] = net_fee
    else:
        receipt["net_usage"] = NET_USAGE
    receipt["result"] = call.result
    info: dict[str, JsonValue] = {}
    if energy_fee + net_fee:
        info["fee"] = energy_fee + net_fee
    info |= {
        "blockNumber": block.number,
        "blockTimeStamp": block.timestamp,
        "contractResult": [SUCCESS_WORD if call.result == "SUCCESS" else ""],
        "contract_address": _addr(call.contract, visible),
        "receipt": receipt,
    }
    if call.logs:
        # visible=true shows a log's address in base58, as for TRC-20 logs
        info["log"] = [
            log | {"address": _addr("41" + str(log["address"]), True)} if visible else log for log in call.logs
        ]
    if call.result != "SUCCESS":
        message = (
            REVERT_MESSAGE
            if call.result == "REVERT"
            else f"Not enough energy for 'SSTORE' operation executing: curInvokeEnergyLimit[{energy}]"
        )
        info["result"] = "FAILED"
        info["resMessage"] = message.encode().hex()
    return info


# -- building and accepting transactions (protobuf, signatures) ---------------------------------


def _pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _pb(number: int, value: int | bytes) -> bytes:
    """One protobuf field; defaults (0, empty) are not written."""
    if isinstance(value, int):
        return _pb_varint(number << 3) + _pb_varint(value) if value else b""
    return _pb_varint(number << 3 | 2) + _pb_varint(len(value)) + value if value else b""


def _trigger_raw_hex(owner: str, contract: str, data: str, call_value: int, raw: dict[str, JsonValue]) -> str:
    """`protocol.Transaction.raw` of a TriggerSmartContract, fields in number order as java-tron
    serialises them."""
    call = _pb(1, bytes.fromhex(owner)) + _pb(2, bytes.fromhex(contract)) + _pb(3, call_value)
    call += _pb(4, bytes.fromhex(data))
    any_msg = _pb(1, b"type.googleapis.com/protocol.TriggerSmartContract") + _pb(2, call)
    contract_msg = _pb(1, 31) + _pb(2, any_msg)
    body = _pb(1, bytes.fromhex(str(raw["ref_block_bytes"]))) + _pb(4, bytes.fromhex(str(raw["ref_block_hash"])))
    body += _pb(8, int(raw["expiration"])) + _pb(11, contract_msg) + _pb(14, int(raw["timestamp"]))
    return (body + _pb(18, int(raw["fee_limit"]))).hex()


def _selector(signature: str) -> str:
    return _selector_hash(signature)[:8]


def _selector_hash(signature: str) -> str:
    from Crypto.Hash import keccak

    return keccak.new(digest_bits=256, data=signature.encode()).hexdigest()


def _message(text: str) -> str:
    return text.encode().hex()


def _trigger(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/triggersmartcontract`: the unsigned transaction of a contract call, referencing the
    head block and expiring a minute after it, as java-tron builds it."""
    try:
        owner, contract = _hex41(str(req.params["owner_address"])), _hex41(str(req.params["contract_address"]))
    except (KeyError, ValueError) as exc:
        return {"result": {"code": "OTHER_ERROR", "message": _message(f"invalid address: {exc}")}}
    selector = str(req.params.get("function_selector", ""))
    data = (_selector(selector) if selector else "") + str(req.params.get("parameter", ""))
    if "data" in req.params and not selector:
        data = str(req.params["data"])
    call_value, fee_limit = int(req.params.get("call_value", 0)), int(req.params.get("fee_limit", 0))
    with chain._lock:
        head = chain.blocks[-1]
        raw: dict[str, JsonValue] = {
            "contract": [
                {
                    "parameter": {
                        "value": {"data": data, "owner_address": owner, "contract_address": contract}
                        | ({"call_value": call_value} if call_value else {}),
                        "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
                    },
                    "type": "TriggerSmartContract",
                }
            ],
            "ref_block_bytes": f"{head.number:016x}"[12:16],
            "ref_block_hash": head.block_id[16:32],
            "expiration": head.timestamp + 60_000,
            "fee_limit": fee_limit,
            "timestamp": head.timestamp + 1_000,
        }
        raw_hex = _trigger_raw_hex(owner, contract, data, call_value, raw)
        txid = hashlib.sha256(bytes.fromhex(raw_hex)).hexdigest()
        chain.built[txid] = ContractCall(owner, contract, data, fee_limit, raw, raw_hex, txid)
    shown = _call_raw_data(chain.built[txid], req.visible)
    transaction = {"visible": req.visible, "txID": txid, "raw_data": shown, "raw_data_hex": raw_hex}
    return {"result": {"result": True}, "transaction": transaction}


def _recovers_to(signature_hex: str, raw_hex: str, owner: str) -> bool:
    from coincurve import PublicKey

    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    if len(signature) != 65 or signature[64] not in (0, 1, 27, 28):
        return False
    compact = signature[:64] + bytes([signature[64] % 27])
    digest = hashlib.sha256(bytes.fromhex(raw_hex)).digest()
    try:
        point = PublicKey.from_signature_and_message(compact, digest, hasher=None).format(compressed=False)
    except Exception:
        return False
    from Crypto.Hash import keccak

    return "41" + keccak.new(digest_bits=256, data=point[1:]).hexdigest()[24:] == owner


def _broadcast(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/broadcasttransaction`: accepts a transaction this node built, signed by its owner,
    not expired and not seen before; it is mined in the next block. Refusals carry java-tron's
    codes, with the message hex-encoded."""
    txid, raw_hex = str(req.params.get("txID", "")), str(req.params.get("raw_data_hex", ""))
    signatures = req.params.get("signature") or []
    with chain._lock:
        built = chain.built.get(txid)
        if built is None or built.raw_data_hex != raw_hex or hashlib.sha256(bytes.fromhex(raw_hex)).hexdigest() != txid:
            return {"code": "OTHER_ERROR", "txid": txid, "message": _message("not a transaction this node built")}
        if txid in chain.txs or any(p.txid == txid for p in chain.pending):
            return {"code": "DUP_TRANSACTION_ERROR", "txid": txid, "message": _message("dup transaction")}
        if int(built.raw_data["expiration"]) <= chain.blocks[-1].timestamp:
            return {"code": "TRANSACTION_EXPIRATION_ERROR", "txid": txid, "message": _message("transaction expired")}
        if len(signatures) != 1 or not _recovers_to(str(signatures[0]), raw_hex, built.owner):
            message = "validate signature error: the signature does not recover to the owner address"
            return {"code": "SIGERROR", "txid": txid, "message": _message(message)}
        result, energy = chain.call_outcomes.pop(0) if chain.call_outcomes else ("SUCCESS", None)
        chain.pending.append(
            ContractCall(
                built.owner,
                built.contract,
                built.data,
                built.fee_limit,
                built.raw_data,
                raw_hex,
                txid,
                signature=str(signatures[0]),
                result=result,
                energy=energy or 0,
            )
        )
    return {"result": True, "txid": txid}


def _contract_json(contract: FakeContract, visible: bool) -> dict[str, JsonValue]:
    """`protocol.SmartContract` as getcontract shows it: `bytecode` is the deployment code with its
    constructor arguments, not the runtime code; the ABI is left out (the gateway never reads it)."""
    return {
        "origin_address": _addr(contract.origin, visible),
        "contract_address": _addr(contract.address, visible),
        "bytecode": contract.bytecode,
        "consume_user_resource_percent": 100,
        "name": contract.name,
        "origin_energy_limit": 10_000_000,
    }


def _lookup(chain: FakeChain, req: Request) -> FakeContract | None:
    try:
        return chain.contracts.get(_hex41(req.value()))
    except ValueError:
        return None


def _get_contract(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/getcontract`: the SmartContract, or `{}` where no contract is."""
    contract = _lookup(chain, req)
    return _contract_json(contract, req.visible) if contract is not None else {}


def _get_contract_info(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/getcontractinfo`: the SmartContract with its `runtimecode`, or `{}`."""
    contract = _lookup(chain, req)
    if contract is None:
        return {}
    return {
        "smart_contract": _contract_json(contract, req.visible),
        "runtimecode": contract.runtime,
        "contract_state": {"energy_usage": 0, "update_cycle": 1},
    }


def _trigger_constant(chain: FakeChain, req: Request, *, solidity: bool = False) -> JsonValue:
    """`wallet/triggerconstantcontract`: a read-only call answered by the contract's `call`; the
    return data in `constant_result`, a revert as java-tron reports a failed constant call. Under
    `/walletsolidity/` a token's balanceOf answers the solidified state."""
    try:
        address = _hex41(str(req.params["contract_address"]))
    except (KeyError, ValueError) as exc:
        return {"result": {"code": "OTHER_ERROR", "message": _message(f"invalid address: {exc}")}}
    contract = chain.contracts.get(address)
    selector = str(req.params.get("function_selector", ""))
    data = (_selector(selector) if selector else "") + str(req.params.get("parameter", ""))
    if "data" in req.params and not selector:
        data = str(req.params["data"])
    if contract is None and address in chain.tokens and data[:8] == BALANCE_OF_SELECTOR and len(data) == 72:
        with chain._lock:  # a TRC-20 the node keeps balances of answers balanceOf(holder)
            key = (address, "41" + data[-40:])
            units = chain.balance_at(key, chain.solid) if solidity else chain.balances.get(key, 0)
        return {"result": {"result": True}, "energy_used": 536, "constant_result": [_word(units)]}
    if contract is None and address in chain.factories and (word := chain.factory_view(address, data)) is not None:
        return {"result": {"result": True}, "energy_used": 1_284, "constant_result": [word]}
    if contract is None or contract.call is None:
        message = "No contract or not a valid smart contract"
        return {"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": _message(message)}}
    try:
        answer = contract.call(bytes.fromhex(data))
    except ValueError as exc:
        return {
            "result": {"code": "CONTRACT_EXE_ERROR", "message": _message(f"REVERT opcode executed: {exc}")},
            "energy_used": 1_284,
            "constant_result": [""],
        }
    return {"result": {"result": True}, "energy_used": 1_284, "constant_result": [answer.hex()]}


def _account_resource(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/getaccountresource`: AccountResourceMessage, zero fields left out; `{}` for an
    account the node does not know. The network totals are illustrative."""
    try:
        account = chain.accounts.get(_hex41(str(req.params.get("address", ""))))
    except ValueError:
        account = None
    if account is None:
        return {}
    fields = {
        "freeNetUsed": account.free_net_used,
        "freeNetLimit": account.free_net_limit,
        "NetUsed": account.net_used,
        "NetLimit": account.net_limit,
        "TotalNetLimit": 43_200_000_000,
        "TotalNetWeight": 68_305_209_098,
        "EnergyUsed": account.energy_used,
        "EnergyLimit": account.energy_limit,
        "TotalEnergyLimit": 180_000_000_000,
        "TotalEnergyWeight": 2_411_528_185,
    }
    return {k: v for k, v in fields.items() if v}


def _account(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/getaccount`: the account with its TRX `balance` (sun), `{}` for an account the node
    does not know (one never given a balance here); a zero balance is left out."""
    try:
        address = _hex41(str(req.params.get("address", "")))
    except ValueError:
        return {}
    with chain._lock:
        if address not in chain.trx:
            return {}
        balance = chain.trx[address]
    account: dict[str, JsonValue] = {"address": _addr(address, req.visible)}
    if balance:
        account["balance"] = balance
    return account | {"create_time": chain.blocks[0].timestamp}


def _chain_parameters(chain: FakeChain, _req: Request) -> JsonValue:
    """`wallet/getchainparameters`: the proposals' current values, a few of mainnet's."""
    return {
        "chainParameter": [
            {"key": "getMaintenanceTimeInterval", "value": 21_600_000},
            {"key": "getTransactionFee", "value": NET_FEE_PER_BYTE},
            {"key": "getEnergyFee", "value": ENERGY_PRICE_SUN},
            {"key": "getCreateAccountFee", "value": 100_000},
            {"key": "getMaxFeeLimit", "value": 15_000_000_000},
        ]
    }


# -- HTTP ---------------------------------------------------------------------------------------


class JavaError(Exception):
    """An error java-tron reports in the body as `{"Error": "class <java class> : <message>"}`."""

    def __init__(self, java_class: str, message: str) -> None:
        super().__init__(f"class {java_class} : {message}")


@dataclass
class Request:
    path: str
    params: dict[str, JsonValue]
    query_visible: bool

    @property
    def visible(self) -> bool:
        value = self.params.get("visible", False)
        return value is True or str(value).lower() == "true"

    def num(self, key: str = "num") -> int:
        value = self.params.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise JavaError("java.lang.NumberFormatException", f'For input string: "{value}"')
        try:
            return int(value)
        except ValueError:
            raise JavaError("java.lang.NumberFormatException", f'For input string: "{value}"') from None

    def value(self) -> str:
        return str(self.params.get("value", ""))


Route = Callable[[FakeChain, Request], JsonValue]


def _node_info(chain: FakeChain, _req: Request) -> JsonValue:
    head, solid = chain.block(chain.head), chain.block(chain.solid)
    assert head is not None and solid is not None
    return {
        "beginSyncNum": head.number,
        "block": f"Num:{head.number},ID:{head.block_id}",
        "solidityBlock": f"Num:{solid.number},ID:{solid.block_id}",
        "currentConnectCount": 30,
        "activeConnectCount": 3,
        "passiveConnectCount": 27,
        "totalFlow": 0,
        "peerInfoList": [],
        "configNodeInfo": {
            "codeVersion": "4.7.7",
            "p2pVersion": "11111",
            "listenPort": 18888,
            "discoverEnable": True,
            "activeNodeSize": 0,
            "passiveNodeSize": 0,
            "sendNodeSize": 0,
            "maxConnectCount": 30,
            "sameIpMaxConnectCount": 2,
            "backupListenPort": 10001,
            "backupMemberSize": 0,
            "backupPriority": 8,
            "dbVersion": 2,
            "minParticipationRate": 15,
            "supportConstant": False,
            "minTimeRatio": 0.0,
            "maxTimeRatio": 5.0,
            "allowCreationOfContracts": 0,
            "allowAdaptiveEnergy": 0,
        },
        "machineInfo": {
            "threadCount": 245,
            "deadLockThreadCount": 0,
            "cpuCount": 8,
            "totalMemory": 33_524_633_600,
            "freeMemory": 1_962_082_304,
            "cpuRate": 0.1,
            "javaVersion": "1.8.0_412",
            "osName": "Linux 5.15.0-1064-aws",
            "jvmTotalMemory": 12_884_901_888,
            "jvmFreeMemory": 4_294_967_296,
            "processCpuRate": 0.05,
            "memoryDescInfoList": [],
            "deadLockThreadInfoList": [],
        },
        "cheatWitnessInfoMap": {},
    }


def _limit(chain: FakeChain, solidity: bool) -> int:
    return chain.solid if solidity else chain.head


def _now_block(solidity: bool) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        block = chain.block(_limit(chain, solidity))
        # java-tron's GetNowBlockServlet reads `visible` from the query string only
        return render_block(block, req.query_visible) if block is not None else {}

    return route


def _block_by_num(solidity: bool) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        num = req.num()
        block = chain.block(num) if num <= _limit(chain, solidity) else None
        return render_block(block, req.visible) if block is not None else {}

    return route


def _block_by_id(solidity: bool) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        block = chain.block_by_id(req.value())
        if block is None or block.number > _limit(chain, solidity):
            return {}
        return render_block(block, req.visible)

    return route


def _block_by_limit_next(chain: FakeChain, req: Request) -> JsonValue:
    start, end = req.num("startNum"), req.num("endNum")
    if start < 0 or end <= start or end - start > 100:
        return {}
    blocks = [b for n in range(start, end) if (b := chain.block(n)) is not None]
    return {"block": [render_block(b, req.visible) for b in blocks]} if blocks else {}


def _tx_infos_by_block(solidity: bool) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        num = req.num()
        if num <= 0:
            return {}
        block = chain.block(num) if num <= _limit(chain, solidity) else None
        if block is None:
            return []  # an unknown block looks like an empty one
        return [render_transaction_info(tx, block, req.visible) for tx in block.transactions]

    return route


def _tx_info_by_id(solidity: bool) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        found = chain.transaction(req.value())
        if found is None or found[1].number > _limit(chain, solidity):
            return {}
        return render_transaction_info(found[0], found[1], req.visible)

    return route


def _tx_by_id(solidity: bool) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        found = chain.transaction(req.value())
        if found is None or found[1].number > _limit(chain, solidity):
            return {}
        return render_transaction(found[0], req.visible)

    return route


ROUTES: dict[str, Route] = {
    "/wallet/getnodeinfo": _node_info,
    "/wallet/getblockbylimitnext": _block_by_limit_next,
    "/wallet/triggersmartcontract": _trigger,
    "/wallet/broadcasttransaction": _broadcast,
    "/wallet/getcontract": _get_contract,
    "/wallet/getcontractinfo": _get_contract_info,
    "/wallet/triggerconstantcontract": _trigger_constant,
    "/walletsolidity/triggerconstantcontract": lambda chain, req: _trigger_constant(chain, req, solidity=True),
    "/wallet/getaccountresource": _account_resource,
    "/wallet/getaccount": _account,
    "/wallet/getchainparameters": _chain_parameters,
}
for _prefix, _solid in (("/wallet", False), ("/walletsolidity", True)):
    ROUTES[f"{_prefix}/getnowblock"] = _now_block(_solid)
    ROUTES[f"{_prefix}/getblockbynum"] = _block_by_num(_solid)
    ROUTES[f"{_prefix}/getblockbyid"] = _block_by_id(_solid)
    ROUTES[f"{_prefix}/gettransactioninfobyblocknum"] = _tx_infos_by_block(_solid)
    ROUTES[f"{_prefix}/gettransactioninfobyid"] = _tx_info_by_id(_solid)
    ROUTES[f"{_prefix}/gettransactionbyid"] = _tx_by_id(_solid)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    node: TronNode


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each answer would wait for the
    # client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._handle(post=False)

    def do_POST(self) -> None:
        self._handle(post=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self, post: bool) -> None:
        node = self.server.node
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if post else b""
        fault = node._take_fault(path)
        if fault == "timeout":
            node._stopping.wait(node.hang_seconds)
            self.close_connection = True
            return
        if fault is not None:
            payload = RATE_LIMIT_BODY if fault == HTTPStatus.TOO_MANY_REQUESTS else {"Error": _phrase(fault)}
            self._send(fault, payload)
            return
        route = ROUTES.get(path)
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, None, text=f"Not Found: {path}")
            return
        try:
            params: dict[str, JsonValue] = dict(query)
            if body.strip():
                decoded = json.loads(body)
                if not isinstance(decoded, dict):
                    raise JavaError("com.alibaba.fastjson.JSONException", "syntax error, expect {")
                if path.endswith("/getnowblock"):
                    decoded.pop("visible", None)  # getnowblock ignores the body
                params |= decoded
            req = Request(path=path, params=params, query_visible=str(query.get("visible", "")).lower() == "true")
            result = route(node.chain, req)
            if (change := node._take_tamper(path)) is not None:
                result = change(result)
        except JavaError as exc:
            result = {"Error": str(exc)}
        except json.JSONDecodeError as exc:
            result = {"Error": f"class com.alibaba.fastjson.JSONException : {exc.msg}"}
        self._send(HTTPStatus.OK, result)

    def _send(self, status: int, payload: JsonValue, text: str | None = None) -> None:
        data = (text if text is not None else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class TronNode:
    """A running fake full node on loopback; `stop` (or leaving a `with` block) ends it. Drive its
    chain with `add_block`, `mine`, `set_solid` and `reorg`; inject faults with `fail_next` and
    wrong answers with `tamper_next`; `requests` counts the requests per path."""

    def __init__(self, chain: FakeChain, *, port: int = 0, hang_seconds: float = HANG_SECONDS) -> None:
        self.chain = chain
        self.hang_seconds = hang_seconds
        self.requests: Counter[str] = Counter()
        self._faults: list[tuple[Fault, str | None]] = []
        self._tampers: list[tuple[str, Callable[[JsonValue], JsonValue]]] = []
        self._fault_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server((HOST, port), _Handler)
        self._server.node = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-tron-node", daemon=True
        )
        self._thread.start()

    # chain driving

    @property
    def head(self) -> int:
        return self.chain.head

    @property
    def solid(self) -> int:
        return self.chain.solid

    def add_block(self, transfers: Iterable[Transfer] = (), timestamp: int | None = None) -> int:
        """Append a block holding one transaction per transfer; returns its number."""
        return self.chain.add_block(transfers, timestamp)

    def mine(self, count: int = 1) -> int:
        """Append `count` empty blocks; returns the new head."""
        for _ in range(count):
            self.chain.add_block()
        return self.chain.head

    def set_solid(self, number: int | None) -> None:
        self.chain.set_solid(number)

    def reorg(self, from_number: int, new_blocks: Sequence[Sequence[Transfer]] | int) -> int:
        return self.chain.reorg(from_number, new_blocks)

    def block_id(self, number: int) -> str:
        block = self.chain.block(number)
        if block is None:
            raise KeyError(number)
        return block.block_id

    def txids(self, number: int) -> list[str]:
        block = self.chain.block(number)
        if block is None:
            raise KeyError(number)
        return [tx.txid for tx in block.transactions]

    def fund_deposit(self, factory: str, token: str, salt: bytes, deposit: str, amount: int) -> None:
        """Give `deposit`, taken as the address of `salt` under `factory` (as given, not computed),
        a balance of `amount` `token`: the next successful sweep of that salt moves it and logs
        Swept (and Transfer to the treasury, when the factory is registered with `add_factory`)."""
        with self.chain._lock:
            self.chain.deposit_of[(_hex41(factory), salt.hex())] = _hex41(deposit)
            self.chain.tokens.add(_hex41(token))
            self.chain.balances[(_hex41(token), _hex41(deposit))] = amount

    def add_factory(self, factory: str, *, implementation: str, treasury: str, owner: str | None = None) -> None:
        """Register a DepositFactory: a sweep through it moves each salt's CREATE2 deposit address
        (computed here) to `treasury`; with its `owner`, a refund the owner signed runs through it."""
        with self.chain._lock:
            self.chain.factories[_hex41(factory)] = FakeFactory(
                _hex41(factory), _hex41(implementation), _hex41(treasury), _hex41(owner) if owner else None
            )

    def balance(self, token: str, holder: str) -> int:
        """`holder`'s balance of `token` on the chain as it stands (a reorg puts it back)."""
        return self.chain.balance(token, holder)

    def fund_trx(self, address: str, sun: int) -> None:
        """Give `address` a TRX balance (sun): `getaccount` reports it, and the fees its mined
        calls burn are taken from it. Accounts never funded are not charged."""
        with self.chain._lock:
            self.chain.trx[_hex41(address)] = sun

    def trx_balance(self, address: str) -> int | None:
        with self.chain._lock:
            return self.chain.trx.get(_hex41(address))

    def next_call_outcome(self, result: str = "OUT_OF_ENERGY", energy: int | None = None) -> None:
        """Give the next broadcast contract call this receipt result (`OUT_OF_ENERGY` burns its
        whole fee limit; `REVERT`; `SUCCESS` with `energy`)."""
        with self.chain._lock:
            self.chain.call_outcomes.append((result, energy))

    def add_contract(self, contract: FakeContract) -> None:
        """Hold `contract` at its address (getcontract, getcontractinfo, triggerconstantcontract)."""
        with self.chain._lock:
            self.chain.contracts[contract.address] = contract

    def stake(self, address: str, *, energy: int = 0, bandwidth: int = 0) -> AccountResources:
        """Give `address` energy and bandwidth from staked TRX (Stake 2.0): its calls' energy is
        paid from it first, and getaccountresource reports it."""
        with self.chain._lock:
            account = self.chain.accounts.setdefault(_hex41(address), AccountResources())
            account.energy_limit, account.net_limit = energy, bandwidth
            return account

    # faults

    def fail_next(
        self, count: int = 1, status: Fault = HTTPStatus.INTERNAL_SERVER_ERROR, path: str | None = None
    ) -> None:
        """Fail the next `count` requests (to `path` only, if given): an HTTP status (500, 429 with
        TronGrid's rate-limit body, ...) or "timeout" (hold the connection `hang_seconds`, then
        drop it without an answer)."""
        with self._fault_lock:
            self._faults.extend([(status, path.rstrip("/") if path else None)] * count)

    def tamper_next(self, count: int, path: str, change: Callable[[JsonValue], JsonValue]) -> None:
        """Answer the next `count` requests to `path` with `change(the faithful answer)`: a node
        that misbehaves as java-tron does not (e.g. `{}` for a block it has, or an info list
        missing a transaction), to test what the gateway must not trust."""
        with self._fault_lock:
            self._tampers.extend([(path.rstrip("/"), change)] * count)

    def _take_tamper(self, path: str) -> Callable[[JsonValue], JsonValue] | None:
        with self._fault_lock:
            for i, (only, change) in enumerate(self._tampers):
                if only == path:
                    del self._tampers[i]
                    return change
            return None

    def _take_fault(self, path: str) -> Fault | None:
        with self._fault_lock:
            self.requests[path] += 1
            for i, (fault, only) in enumerate(self._faults):
                if only is None or only == path:
                    del self._faults[i]
                    return fault
            return None

    # lifecycle

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TronNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_tron_node(
    *,
    port: int = 0,
    blocks: int = 0,
    solid_lag: int = SOLID_LAG,
    start_timestamp: int | None = None,
    hang_seconds: float = HANG_SECONDS,
    chain_id: int = MAINNET_CHAIN_ID,
) -> TronNode:
    """Start a fake full node (free port unless `port` is given) whose chain holds the genesis
    block plus `blocks` empty blocks."""
    chain = FakeChain(start_timestamp=start_timestamp, solid_lag=solid_lag, chain_id=chain_id)
    for _ in range(blocks):
        chain.add_block()
    return TronNode(chain, port=port, hang_seconds=hang_seconds)


# -- accounts: TRX, TRC-20 balances and Stake 2.0 delegation ---------------------------------------
#
# What the xpub sweep tool needs of a node: accounts with TRX and Stake 2.0 stakes, TRC-20 tokens
# whose balances move on a transfer, TRX transfers (`createtransaction`), energy and bandwidth
# delegation (`delegateresource`, `undelegateresource`), and the fees java-tron charges. Kept apart
# from the contract-mode parts above: the routes below wrap theirs and answer only for the
# accounts and tokens registered with `TronAccounts.of(node)`.
#
# Shapes and rules, with their sources:
# - java-tron's HTTP API documentation (tronprotocol/documentation-en, docs/api/http/):
#   tx-build-and-broadcast/createtransaction.md (TransferContract; "Validate TransferContract error,
#   no OwnerAccount.", "balance is not sufficient."), stake-v2/delegateresource.md and
#   undelegateresource.md (an unsigned Transaction, or {"Error": "class ...ContractValidateException
#   : ..."}: "delegateBalance must be greater than or equal to 1 TRX", "... less than or equal to
#   available FreezeEnergyV2 balance", "Account[...] not exists", "delegated Resource does not
#   exist"), stake-v2/getcandelegatedmaxsize.md ({"max_size"} in sun, {} when 0; type 0 bandwidth,
#   1 energy), account/getaccount.md ({} for an unknown account), account/getaccountresource.md,
#   network-information/getchainparameters.md ({"chainParameter": [{"key", "value"}]}),
#   smart-contract/triggerconstantcontract.md (also served by /walletsolidity; a revert is
#   `result.result` true with `transaction.ret[0].ret` "FAILED").
# - The contract protos (java-tron protocol/src/main/protos/core/contract/balance_contract.proto):
#   TransferContract {owner_address 1, to_address 2, amount 3}; DelegateResourceContract
#   {owner_address 1, resource 2, balance 3, receiver_address 4, lock 5, lock_period 6};
#   UnDelegateResourceContract {owner_address 1, resource 2, balance 3, receiver_address 4};
#   ContractType TransferContract 1, DelegateResourceContract 57, UnDelegateResourceContract 58;
#   ResourceCode BANDWIDTH 0, ENERGY 1 (a default, so BANDWIDTH is left out of the JSON).
# - java-tron's BandwidthProcessor (chainbase/src/main/java/org/tron/core/db/BandwidthProcessor.java):
#   a transaction's bandwidth is its serialized size without `ret` plus 64 bytes; it is paid from
#   staked (and delegated) bandwidth first, then the free 600, then burned at getTransactionFee per
#   byte; a transfer that creates an account uses staked bandwidth or burns getCreateAccountFee
#   instead; a missing owner is "account [T...] does not exist". TransferActuator adds
#   getCreateNewAccountFeeInSystemContract (1 TRX) for a new account (chains.md §2.7).
# - Energy (docs/mechanism-algorithm/resource.md "How to Set Fee Limit"): a call may use the
#   caller's staked and delegated energy plus what its balance buys, at most fee_limit / price in
#   all; out of energy, all of that is used. A USDT transfer costs 64,285 energy to a holder and
#   130,285 to a new holder (chains.md §2.7, docs.catfee.io); the token pays nothing itself
#   (consume_user_resource_percent 100 here).
#
# Not modelled: resource recovery over 24 h, the dynamic energy factor, locked delegations,
# reorgs (balances stay as broadcast), multi-signature permissions.

TRX_SUN = 1_000_000
CREATE_ACCOUNT_FEE = 100_000  # getCreateAccountFee: bandwidth of a transfer creating an account
CREATE_NEW_ACCOUNT_FEE = 1_000_000  # getCreateNewAccountFeeInSystemContract
MAX_RESULT_SIZE_IN_TX = 64
USDT_ENERGY_TO_HOLDER = 64_285
USDT_ENERGY_TO_NEW_HOLDER = 130_285
TOKEN_REVERT_ENERGY = 1_284
BALANCE_OF_SELECTOR = "70a08231"
# The network totals getaccountresource reports (the documentation's Nile example): a staked TRX
# gives TOTAL_ENERGY_LIMIT / TOTAL_ENERGY_WEIGHT energy (about 74.6) and TOTAL_NET_LIMIT /
# TOTAL_NET_WEIGHT bandwidth (about 0.63).
TOTAL_ENERGY_LIMIT = 180_000_000_000
TOTAL_ENERGY_WEIGHT = 2_411_528_185
TOTAL_NET_LIMIT = 43_200_000_000
TOTAL_NET_WEIGHT = 68_305_209_098
CONTRACT_TYPES = {"TransferContract": 1, "DelegateResourceContract": 57, "UnDelegateResourceContract": 58}
RESOURCE_CODES = {"BANDWIDTH": 0, "ENERGY": 1}
VALIDATE_ERROR = "class org.tron.core.exception.ContractValidateException"


def _resource_limit(frozen_sun: int, total_limit: int, total_weight: int) -> int:
    """Energy or bandwidth of `frozen_sun` staked, as java-tron computes it (whole TRX only)."""
    return int((frozen_sun // TRX_SUN) * (total_limit / total_weight))


def tx_bandwidth(raw_data_hex: str) -> int:
    """Bandwidth bytes of a transaction with one 65-byte signature: its serialized size (raw_data
    field, signature field) plus MAX_RESULT_SIZE_IN_TX."""
    raw = len(raw_data_hex) // 2
    return 1 + len(_pb_varint(raw)) + raw + 2 + 65 + MAX_RESULT_SIZE_IN_TX


@dataclass
class Holder:
    """An activated account: TRX (sun), Stake 2.0 stakes not delegated away (sun), what others
    delegated to it (sun), and the resources it used (no recovery here)."""

    balance: int = 0
    create_time: int = 0
    frozen_energy: int = 0
    frozen_bandwidth: int = 0
    acquired_energy: int = 0
    acquired_bandwidth: int = 0
    delegated_energy: int = 0
    delegated_bandwidth: int = 0
    energy_used: int = 0
    net_used: int = 0
    free_net_used: int = 0

    @property
    def energy_limit(self) -> int:
        return _resource_limit(self.frozen_energy + self.acquired_energy, TOTAL_ENERGY_LIMIT, TOTAL_ENERGY_WEIGHT)

    @property
    def net_limit(self) -> int:
        return _resource_limit(self.frozen_bandwidth + self.acquired_bandwidth, TOTAL_NET_LIMIT, TOTAL_NET_WEIGHT)

    @property
    def energy_left(self) -> int:
        return max(self.energy_limit - self.energy_used, 0)

    def can_delegate(self, resource: str) -> int:
        """getcandelegatedmaxsize: the staked sun not delegated away, less what the used part of
        the resource is worth (approximating java-tron's Wallet.getCanDelegatedMaxSize)."""
        if resource == "ENERGY":
            frozen, used, limit, weight = self.frozen_energy, self.energy_used, TOTAL_ENERGY_LIMIT, TOTAL_ENERGY_WEIGHT
            total = self.frozen_energy + self.acquired_energy
        else:
            frozen, used, limit, weight = self.frozen_bandwidth, self.net_used, TOTAL_NET_LIMIT, TOTAL_NET_WEIGHT
            total = self.frozen_bandwidth + self.acquired_bandwidth
        if frozen <= 0:
            return 0
        own_used = used * frozen // total if total else 0
        used_sun = -(-own_used * weight * TRX_SUN // limit)
        return max(frozen - used_sun, 0)


@dataclass
class BandwidthBill:
    """How a transaction's bandwidth is paid: staked bytes, free bytes, or sun burned."""

    staked: int = 0
    free: int = 0
    burned: int = 0


@dataclass
class AccountTx:
    """A transaction of an account this module keeps: its contract (`kind`, `value` with 41-hex
    addresses), and once broadcast, its TransactionInfo without id and block (`info`)."""

    kind: str
    owner: str
    value: dict[str, JsonValue]
    raw_data: dict[str, JsonValue]
    raw_data_hex: str
    txid: str
    info: dict[str, JsonValue] | None = None


_ACCOUNTS: weakref.WeakKeyDictionary[FakeChain, TronAccounts] = weakref.WeakKeyDictionary()


class TronAccounts:
    """Accounts, TRC-20 balances and delegations of one fake chain: `TronAccounts.of(node)`. Its
    tokens answer `balanceOf` and `transfer` (their transfers move balances and log Transfer);
    transactions of its accounts are built, checked, charged and rendered as java-tron does (see
    the sources above). Effects apply when a transaction is accepted, in the order accepted; it is
    mined in the next block."""

    def __init__(self, chain: FakeChain) -> None:
        self.chain = chain
        self.holders: dict[str, Holder] = {}  # by 41-hex
        self.tokens: set[str] = set()
        # (token, holder) -> [(block from which it holds, units)]
        self.balances: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self.delegations: dict[tuple[str, str, str], int] = {}  # (owner, receiver, resource) -> sun
        self.built: dict[str, AccountTx] = {}
        self.sent: dict[str, AccountTx] = {}  # accepted, by txid (token transfers too)
        self.energy_fee = ENERGY_PRICE_SUN
        self.transaction_fee = NET_FEE_PER_BYTE

    @classmethod
    def of(cls, node: TronNode | FakeChain) -> TronAccounts:
        chain = node.chain if isinstance(node, TronNode) else node
        with chain._lock:
            found = _ACCOUNTS.get(chain)
            if found is None:
                found = _ACCOUNTS[chain] = cls(chain)
            return found

    # driving (tests)

    def create(self, address: str, trx_sun: int = 0) -> Holder:
        """Activate `address` (if it is not) and give it `trx_sun` more TRX."""
        with self.chain._lock:
            holder = self.holders.setdefault(_hex41(address), Holder(create_time=self.chain.blocks[-1].timestamp))
            holder.balance += trx_sun
            return holder

    def stake(self, address: str, *, energy_sun: int = 0, bandwidth_sun: int = 0) -> Holder:
        """Stake (FreezeBalanceV2) `energy_sun` for energy and `bandwidth_sun` for bandwidth on an
        account, which is activated if it is not; the TRX is not taken from its balance."""
        with self.chain._lock:
            holder = self.create(address)
            holder.frozen_energy += energy_sun
            holder.frozen_bandwidth += bandwidth_sun
            return holder

    def add_token(self, token: str) -> None:
        """Keep the balances of TRC-20 `token`: balanceOf, transfer and its estimates answer here."""
        with self.chain._lock:
            self.tokens.add(_hex41(token))

    def mint(self, token: str, holder: str, units: int) -> None:
        """Give `holder` `units` more of `token`, from the head block on (no transaction)."""
        with self.chain._lock:
            token41, holder41 = _hex41(token), _hex41(holder)
            self._set_balance(token41, holder41, self.token_balance(token41, holder41) + units, self.chain.head)

    def pay_token(self, token: str, sender: str, recipient: str, units: int) -> str:
        """A new block with one `token` transfer from `sender` (who must hold it) to `recipient`:
        the balances move and the block logs Transfer, as a payment from a wallet would. Its txid."""
        with self.chain._lock:
            token41, sender41, recipient41 = _hex41(token), _hex41(sender), _hex41(recipient)
            held = self.token_balance(token41, sender41)
            if held < units:
                raise ValueError(f"{sender} holds {held} units, not {units}")
            block = self.chain.head + 1
            self._set_balance(token41, sender41, held - units, block)
            self._set_balance(token41, recipient41, self.token_balance(token41, recipient41) + units, block)
            number = self.chain.add_block([Trc20Transfer(token, sender, recipient, units)])
            found = self.chain.block(number)
            assert found is not None and number == block
            return found.transactions[-1].txid

    def use_free_bandwidth(self, address: str, used: int) -> None:
        """Set how much of its free bandwidth `address` has used today."""
        with self.chain._lock:
            self.create(address).free_net_used = used

    # reading (tests and routes)

    def holder(self, address: str) -> Holder | None:
        with self.chain._lock:
            return self.holders.get(_hex41(address))

    def trx(self, address: str) -> int:
        found = self.holder(address)
        return found.balance if found is not None else 0

    def token_balance(self, token: str, holder: str, block: int | None = None) -> int:
        """Units of `token` `holder` holds at the head, or at the end of `block`."""
        with self.chain._lock:
            history = self.balances.get((_hex41(token), _hex41(holder)), [])
            held = [units for start, units in history if block is None or start <= block]
            return held[-1] if held else 0

    def delegated(self, owner: str | None = None, receiver: str | None = None) -> dict[tuple[str, str, str], int]:
        """Delegations in force (sun by owner, receiver and resource, base58), optionally of one
        owner or receiver."""
        with self.chain._lock:
            return {
                (_addr(o, True), _addr(r, True), res): sun
                for (o, r, res), sun in self.delegations.items()
                if sun and (owner is None or o == _hex41(owner)) and (receiver is None or r == _hex41(receiver))
            }

    def _set_balance(self, token: str, holder: str, units: int, block: int) -> None:
        history = self.balances.setdefault((token, holder), [])
        while history and history[-1][0] >= block:
            history.pop()
        history.append((block, units))

    # building

    def build(self, kind: str, value: dict[str, JsonValue], visible: bool) -> JsonValue:
        """An unsigned transaction of one system contract, referencing the head block and expiring
        a minute after it (as the contract-call builder above does)."""
        owner = str(value["owner_address"])
        with self.chain._lock:
            refusal = self._validate(kind, value)
            if refusal is not None:
                return {"Error": f"{VALIDATE_ERROR} : {refusal}"}
            head = self.chain.blocks[-1]
            raw: dict[str, JsonValue] = {
                "contract": [
                    {
                        "parameter": {"value": value, "type_url": f"type.googleapis.com/protocol.{kind}"},
                        "type": kind,
                    }
                ],
                "ref_block_bytes": f"{head.number:016x}"[12:16],
                "ref_block_hash": head.block_id[16:32],
                "expiration": head.timestamp + 60_000,
                "timestamp": head.timestamp + 1_000,
            }
            raw_hex = _system_raw_hex(kind, value, raw)
            txid = hashlib.sha256(bytes.fromhex(raw_hex)).hexdigest()
            self.built[txid] = AccountTx(kind, owner, value, raw, raw_hex, txid)
        return {"visible": visible, "txID": txid, "raw_data": _system_raw_json(raw, visible), "raw_data_hex": raw_hex}

    def _validate(self, kind: str, value: dict[str, JsonValue]) -> str | None:
        """Why java-tron would refuse this contract now (its messages), or None."""
        owner = str(value["owner_address"])
        holder = self.holders.get(owner)
        if kind == "TransferContract":
            to, amount = str(value["to_address"]), int(value.get("amount", 0))
            if to == owner:
                return "Cannot transfer TRX to yourself."
            if holder is None:
                return "Validate TransferContract error, no OwnerAccount."
            if amount <= 0:
                return "Amount must be greater than 0."
            if holder.balance < amount:
                return "Validate TransferContract error, balance is not sufficient."
            return None
        receiver, resource = str(value["receiver_address"]), str(value.get("resource", "BANDWIDTH"))
        balance = int(value.get("balance", 0))
        if resource not in RESOURCE_CODES:
            return "ResourceCode error, valid ResourceCode[BANDWIDTH、ENERGY]"
        if receiver == owner:
            return "receiverAddress must not be the same as ownerAddress"
        if holder is None:
            return (
                f"Account[{owner}] not exists"
                if kind == "DelegateResourceContract"
                else f"Account[{owner}] does not exist"
            )
        if kind == "DelegateResourceContract":
            if balance < TRX_SUN:
                return "delegateBalance must be greater than or equal to 1 TRX"
            if balance > holder.can_delegate(resource):
                which = "FreezeEnergyV2" if resource == "ENERGY" else "FreezeBandwidthV2"
                return f"delegateBalance must be less than or equal to available {which} balance"
            if receiver not in self.holders:
                return f"Account[{receiver}] not exists"
            return None
        delegated = self.delegations.get((owner, receiver, resource), 0)
        if not delegated:
            return "delegated Resource does not exist"
        if balance <= 0:
            return "unDelegateBalance must be more than 0 TRX"
        if balance > delegated:
            which = "delegateFrozenBalance(Energy)" if resource == "ENERGY" else "delegatedFrozenBalance(BANDWIDTH)"
            return f"insufficient {which}, request={balance}, unlock_balance={delegated}"
        return None

    # broadcasting

    def _refusal(self, txid: str, raw_hex: str, owner: str, signatures: list[str], built_hex: str) -> JsonValue:
        """The checks every broadcast gets (the contract-call broadcast above makes the same)."""
        if built_hex != raw_hex or hashlib.sha256(bytes.fromhex(raw_hex)).hexdigest() != txid:
            return {"code": "OTHER_ERROR", "txid": txid, "message": _message("not a transaction this node built")}
        if txid in self.chain.txs or any(p.txid == txid for p in self.chain.pending):
            return {"code": "DUP_TRANSACTION_ERROR", "txid": txid, "message": _message("dup transaction")}
        if len(signatures) != 1 or not _recovers_to(str(signatures[0]), raw_hex, owner):
            message = "validate signature error: the signature does not recover to the owner address"
            return {"code": "SIGERROR", "txid": txid, "message": _message(message)}
        return None

    def _bandwidth(self, holder: Holder, size: int) -> BandwidthBill | None:
        """How `holder` pays `size` bytes: staked, then free, then burned; None if it cannot."""
        if holder.net_limit - holder.net_used >= size:
            return BandwidthBill(staked=size)
        if FREE_NET_LIMIT - holder.free_net_used >= size:
            return BandwidthBill(free=size)
        if holder.balance >= size * self.transaction_fee:
            return BandwidthBill(burned=size * self.transaction_fee)
        return None

    @staticmethod
    def _pay_bandwidth(holder: Holder, bill: BandwidthBill) -> None:
        holder.net_used += bill.staked
        holder.free_net_used += bill.free
        holder.balance -= bill.burned

    def broadcast_built(self, req: Request) -> JsonValue:
        """`wallet/broadcasttransaction` of a system contract this module built."""
        txid, raw_hex = str(req.params.get("txID", "")), str(req.params.get("raw_data_hex", ""))
        signatures = list(req.params.get("signature") or [])
        with self.chain._lock:
            tx = self.built[txid]
            refused = self._refusal(txid, raw_hex, tx.owner, signatures, tx.raw_data_hex)
            if refused is not None:
                return refused
            if int(str(tx.raw_data["expiration"])) <= self.chain.blocks[-1].timestamp:
                return {
                    "code": "TRANSACTION_EXPIRATION_ERROR",
                    "txid": txid,
                    "message": _message("transaction expired"),
                }
            holder = self.holders.get(tx.owner)
            if holder is None:
                message = f"account [{_addr(tx.owner, True)}] does not exist"
                return {"code": "CONTRACT_VALIDATE_ERROR", "txid": txid, "message": _message(message)}
            refusal = self._validate(tx.kind, tx.value)
            if refusal is not None:
                return {"code": "CONTRACT_VALIDATE_ERROR", "txid": txid, "message": _message(refusal)}
            size = tx_bandwidth(raw_hex)
            creates = tx.kind == "TransferContract" and str(tx.value["to_address"]) not in self.holders
            fee = CREATE_NEW_ACCOUNT_FEE if creates else 0
            if creates:  # staked bandwidth, else getCreateAccountFee burned; never the free bandwidth
                staked = holder.net_limit - holder.net_used >= size
                bill = BandwidthBill(staked=size) if staked else BandwidthBill(burned=CREATE_ACCOUNT_FEE)
            else:
                found = self._bandwidth(holder, size)
                if found is None:
                    message = (
                        f"account [{_addr(tx.owner, True)}] has insufficient bandwidth[{size}] and "
                        f"balance[{size * self.transaction_fee}] to create new account"
                    )
                    return {"code": "BANDWITH_ERROR", "txid": txid, "message": _message(message)}
                bill = found
            amount = int(tx.value.get("amount", 0)) if tx.kind == "TransferContract" else 0
            if holder.balance < amount + fee + bill.burned:
                message = "Validate TransferContract error, balance is not sufficient."
                return {"code": "CONTRACT_VALIDATE_ERROR", "txid": txid, "message": _message(message)}
            self._pay_bandwidth(holder, bill)
            holder.balance -= amount + fee
            self._apply(tx)
            receipt: dict[str, JsonValue] = {"net_fee": bill.burned} if bill.burned else {"net_usage": size}
            info: dict[str, JsonValue] = {"fee": fee + bill.burned} if fee + bill.burned else {}
            tx.info = info | {"contractResult": [""], "receipt": receipt}
            self.sent[txid] = tx
            # Mined as a contract call of no contract (its owner stands in for one; `render` shows
            # the transaction as it is).
            self.chain.pending.append(
                ContractCall(tx.owner, tx.owner, "", 0, tx.raw_data, raw_hex, txid, signature=str(signatures[0]))
            )
        return {"result": True, "txid": txid}

    def _apply(self, tx: AccountTx) -> None:
        owner = self.holders[tx.owner]
        if tx.kind == "TransferContract":
            to = str(tx.value["to_address"])
            if to not in self.holders:
                self.holders[to] = Holder(create_time=self.chain.blocks[-1].timestamp)
            self.holders[to].balance += int(tx.value.get("amount", 0))
            return
        receiver_key, resource = str(tx.value["receiver_address"]), str(tx.value.get("resource", "BANDWIDTH"))
        receiver, balance = self.holders[receiver_key], int(tx.value.get("balance", 0))
        key = (tx.owner, receiver_key, resource)
        energy = resource == "ENERGY"
        if tx.kind == "DelegateResourceContract":
            self.delegations[key] = self.delegations.get(key, 0) + balance
            if energy:
                owner.frozen_energy -= balance
                owner.delegated_energy += balance
                receiver.acquired_energy += balance
            else:
                owner.frozen_bandwidth -= balance
                owner.delegated_bandwidth += balance
                receiver.acquired_bandwidth += balance
            return
        # Undelegation hands the receiver's use of the resource back in proportion, as Stake 2.0 does.
        self.delegations[key] -= balance
        if energy:
            moved = receiver.energy_used * balance // max(receiver.frozen_energy + receiver.acquired_energy, 1)
            receiver.acquired_energy -= balance
            receiver.energy_used -= moved
            owner.energy_used += moved
            owner.delegated_energy -= balance
            owner.frozen_energy += balance
        else:
            moved = receiver.net_used * balance // max(receiver.frozen_bandwidth + receiver.acquired_bandwidth, 1)
            receiver.acquired_bandwidth -= balance
            receiver.net_used -= moved
            owner.net_used += moved
            owner.delegated_bandwidth -= balance
            owner.frozen_bandwidth += balance

    def broadcast_token_transfer(self, chain: FakeChain, req: Request, call: ContractCall) -> JsonValue:
        """`wallet/broadcasttransaction` of a `transfer(to, amount)` of one of its tokens: the
        contract-call broadcast's checks, then bandwidth, energy (delegated first, then burned
        within the fee limit) and the balances. Out of energy, the whole energy limit is used."""
        txid = call.txid
        with chain._lock:
            if txid in chain.txs or any(p.txid == txid for p in chain.pending):
                return _broadcast(chain, req)  # a duplicate is refused before anything is charged
            holder = self.holders.get(call.owner)
            if holder is None:
                message = f"account [{_addr(call.owner, True)}] does not exist"
                return {"code": "CONTRACT_VALIDATE_ERROR", "txid": txid, "message": _message(message)}
            size = tx_bandwidth(call.raw_data_hex)
            bill = self._bandwidth(holder, size)
            if bill is None:
                message = (
                    f"account [{_addr(call.owner, True)}] has insufficient bandwidth[{size}] and "
                    f"balance[{size * self.transaction_fee}] to create new account"
                )
                return {"code": "BANDWITH_ERROR", "txid": txid, "message": _message(message)}
            answer = _broadcast(chain, req)
            if not (isinstance(answer, dict) and answer.get("result") is True):
                return answer
            args = call.data[len(TRANSFER_SELECTOR) :]
            recipient, units = "41" + args[24:64], int(args[64:128] or "0", 16)
            sender_units = self.token_balance(call.contract, call.owner)
            if sender_units < units:
                result, need = "REVERT", TOKEN_REVERT_ENERGY
            else:
                result = "SUCCESS"
                new_holder = self.token_balance(call.contract, recipient) == 0
                need = USDT_ENERGY_TO_NEW_HOLDER if new_holder else USDT_ENERGY_TO_HOLDER
            self._pay_bandwidth(holder, bill)
            price = self.energy_fee
            limit = min(holder.energy_left + holder.balance // price, call.fee_limit // price)
            used = need if need <= limit else limit
            if need > limit:
                result = "OUT_OF_ENERGY"
            staked = min(used, holder.energy_left)
            burned = (used - staked) * price
            holder.energy_used += staked
            holder.balance -= burned
            if result == "SUCCESS":
                block = chain.head + 1
                self._set_balance(call.contract, call.owner, sender_units - units, block)
                received = self.token_balance(call.contract, recipient)
                self._set_balance(call.contract, recipient, received + units, block)
            pending = next(p for p in reversed(chain.pending) if p.txid == txid)
            pending.result, pending.energy = result, used
            receipt: dict[str, JsonValue] = {}
            if staked:
                receipt["energy_usage"] = staked
            if burned:
                receipt["energy_fee"] = burned
            if used:
                receipt["energy_usage_total"] = used
            receipt |= {"net_fee": bill.burned} if bill.burned else {"net_usage": size}
            receipt["result"] = result
            info: dict[str, JsonValue] = {"fee": burned + bill.burned} if burned + bill.burned else {}
            # Tron USDT's transfer returns false (32 zero bytes) on success (chains.md, issue notes).
            info |= {"contractResult": ["00" * 32 if result == "SUCCESS" else ""], "contract_address": call.contract}
            info["receipt"] = receipt
            if result == "SUCCESS":
                info["log"] = [
                    {
                        "address": call.contract[2:],
                        "topics": [TRANSFER_TOPIC, _word(call.owner), _word(recipient)],
                        "data": _word(units),
                    }
                ]
            else:
                message = REVERT_MESSAGE if result == "REVERT" else "Not enough energy for 'SSTORE' operation"
                info |= {"result": "FAILED", "resMessage": message.encode().hex()}
            self.sent[txid] = AccountTx("TriggerSmartContract", call.owner, {}, call.raw_data, call.raw_data_hex, txid)
            self.sent[txid].info = info
        return answer

    # rendering

    def render(self, answer: JsonValue, visible: bool) -> JsonValue:
        """`answer` with the transactions and TransactionInfos of this module's transactions in
        their own shapes (the contract-call rendering above knows only TriggerSmartContract)."""
        if isinstance(answer, list):
            return [self.render(item, visible) for item in answer]
        if not isinstance(answer, dict):
            return answer
        out = dict(answer)
        sent = self.sent.get(str(out.get("txID", "")))
        if sent is not None and sent.kind in CONTRACT_TYPES and "raw_data" in out:
            out["raw_data"] = _system_raw_json(sent.raw_data, visible)
        info_of = self.sent.get(str(out.get("id", "")))
        if info_of is not None and info_of.info is not None and "blockNumber" in out:
            info = json.loads(json.dumps(info_of.info))
            if "contract_address" in info:
                info["contract_address"] = _addr(str(info["contract_address"]), visible)
            if visible:
                for log in info.get("log", []):
                    log["address"] = _addr("41" + str(log["address"]), True)
            out = {"id": out["id"]} | {k: info[k] for k in ("fee",) if k in info}
            out |= {"blockNumber": answer["blockNumber"], "blockTimeStamp": answer["blockTimeStamp"]}
            out |= {k: v for k, v in info.items() if k != "fee"}
        for key in ("transactions", "block"):
            if isinstance(out.get(key), list):
                out[key] = self.render(out[key], visible)
        return out


def _system_raw_hex(kind: str, value: dict[str, JsonValue], raw: dict[str, JsonValue]) -> str:
    """`protocol.Transaction.raw` of one system contract, fields in number order."""

    def addr(name: str) -> bytes:
        return bytes.fromhex(str(value[name])) if name in value else b""

    if kind == "TransferContract":
        body = _pb(1, addr("owner_address")) + _pb(2, addr("to_address")) + _pb(3, int(value.get("amount", 0)))
    else:
        resource = RESOURCE_CODES[str(value.get("resource", "BANDWIDTH"))]
        body = _pb(1, addr("owner_address")) + _pb(2, resource) + _pb(3, int(value.get("balance", 0)))
        body += _pb(4, addr("receiver_address"))
        if kind == "DelegateResourceContract":
            body += _pb(5, int(bool(value.get("lock", False)))) + _pb(6, int(value.get("lock_period", 0)))
    any_msg = _pb(1, f"type.googleapis.com/protocol.{kind}".encode()) + _pb(2, body)
    contract_msg = _pb(1, CONTRACT_TYPES[kind]) + _pb(2, any_msg)
    out = _pb(1, bytes.fromhex(str(raw["ref_block_bytes"]))) + _pb(4, bytes.fromhex(str(raw["ref_block_hash"])))
    out += _pb(8, int(str(raw["expiration"]))) + _pb(11, contract_msg) + _pb(14, int(str(raw["timestamp"])))
    return out.hex()


def _system_raw_json(raw: dict[str, JsonValue], visible: bool) -> dict[str, JsonValue]:
    """raw_data as java-tron shows it: addresses in base58 when visible."""
    shown = json.loads(json.dumps(raw))
    value = shown["contract"][0]["parameter"]["value"]
    for name in ("owner_address", "to_address", "receiver_address"):
        if name in value:
            value[name] = _addr(str(value[name]), visible)
    return dict(shown)


def _hex41_param(req: Request, name: str) -> str | None:
    try:
        return _hex41(str(req.params[name]))
    except (KeyError, ValueError):
        return None


def _create_transaction(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/createtransaction`: an unsigned TRX transfer."""
    owner, to = _hex41_param(req, "owner_address"), _hex41_param(req, "to_address")
    if owner is None:
        return {"Error": f"{VALIDATE_ERROR} : Invalid ownerAddress!"}
    if to is None:
        return {"Error": f"{VALIDATE_ERROR} : Invalid toAddress!"}
    value: dict[str, JsonValue] = {"amount": int(req.params.get("amount", 0)), "owner_address": owner, "to_address": to}
    return TronAccounts.of(chain).build("TransferContract", value, req.visible)


def _resource_builder(kind: str) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        """`wallet/delegateresource` / `wallet/undelegateresource`: an unsigned (un)delegation."""
        owner, receiver = _hex41_param(req, "owner_address"), _hex41_param(req, "receiver_address")
        if owner is None:
            return {"Error": f"{VALIDATE_ERROR} : Invalid address"}
        if receiver is None:
            return {"Error": f"{VALIDATE_ERROR} : Invalid receiverAddress"}
        value: dict[str, JsonValue] = {"owner_address": owner}
        resource = str(req.params.get("resource", "BANDWIDTH"))
        if resource != "BANDWIDTH":  # the enum's default is left out
            value["resource"] = resource
        value |= {"balance": int(req.params.get("balance", 0)), "receiver_address": receiver}
        if kind == "DelegateResourceContract" and req.params.get("lock"):
            value["lock"] = True
            if int(req.params.get("lock_period", 0)):
                value["lock_period"] = int(req.params["lock_period"])
        return TronAccounts.of(chain).build(kind, value, req.visible)

    return route


def _get_account(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/getaccount`: protocol.Account of an account kept here, zero fields left out; others
    as the chain's own TRX balances answer (`_account`)."""
    accounts, address = _ACCOUNTS.get(chain), _hex41_param(req, "address")
    holder = accounts.holders.get(address) if accounts is not None and address is not None else None
    if holder is None or address is None:
        return _account(chain, req)
    fields: dict[str, JsonValue] = {"address": _addr(address, req.visible)}
    if holder.balance:
        fields["balance"] = holder.balance
    fields["create_time"] = holder.create_time
    if holder.net_used:
        fields["net_usage"] = holder.net_used
    if holder.free_net_used:
        fields["free_net_usage"] = holder.free_net_used
    if holder.delegated_bandwidth:
        fields["delegated_frozenV2_balance_for_bandwidth"] = holder.delegated_bandwidth
    if holder.acquired_bandwidth:
        fields["acquired_delegated_frozenV2_balance_for_bandwidth"] = holder.acquired_bandwidth
    resource: dict[str, JsonValue] = {}
    if holder.energy_used:
        resource["energy_usage"] = holder.energy_used
    if holder.delegated_energy:
        resource["delegated_frozenV2_balance_for_energy"] = holder.delegated_energy
    if holder.acquired_energy:
        resource["acquired_delegated_frozenV2_balance_for_energy"] = holder.acquired_energy
    fields["account_resource"] = resource
    bandwidth: dict[str, JsonValue] = {"amount": holder.frozen_bandwidth} if holder.frozen_bandwidth else {}
    energy: dict[str, JsonValue] = {"type": "ENERGY"} | (
        {"amount": holder.frozen_energy} if holder.frozen_energy else {}
    )
    fields["frozenV2"] = [bandwidth, energy, {"type": "TRON_POWER"}]
    return fields


def _accounts_resource(original: Route) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        """`wallet/getaccountresource` of an account kept here; others as before."""
        accounts, address = _ACCOUNTS.get(chain), _hex41_param(req, "address")
        holder = accounts.holders.get(address) if accounts is not None and address is not None else None
        if holder is None:
            return original(chain, req)
        fields = {
            "freeNetUsed": holder.free_net_used,
            "freeNetLimit": FREE_NET_LIMIT,
            "NetUsed": holder.net_used,
            "NetLimit": holder.net_limit,
            "TotalNetLimit": TOTAL_NET_LIMIT,
            "TotalNetWeight": TOTAL_NET_WEIGHT,
            "tronPowerLimit": (holder.frozen_energy + holder.frozen_bandwidth) // TRX_SUN,
            "EnergyUsed": holder.energy_used,
            "EnergyLimit": holder.energy_limit,
            "TotalEnergyLimit": TOTAL_ENERGY_LIMIT,
            "TotalEnergyWeight": TOTAL_ENERGY_WEIGHT,
        }
        return {k: v for k, v in fields.items() if v}

    return route


def _can_delegated_max_size(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/getcandelegatedmaxsize`: {"max_size": sun} (type 0 bandwidth, 1 energy), {} for 0."""
    accounts, address = _ACCOUNTS.get(chain), _hex41_param(req, "owner_address")
    holder = accounts.holders.get(address) if accounts is not None and address is not None else None
    resource = "ENERGY" if int(req.params.get("type", 0)) == 1 else "BANDWIDTH"
    size = holder.can_delegate(resource) if holder is not None else 0
    return {"max_size": size} if size else {}


def _accounts_chain_parameters(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/getchainparameters` where accounts are kept here: the fee parameters this node
    charges (a zero value has no "value", as protobuf-JSON writes it); else `_chain_parameters`."""
    accounts = _ACCOUNTS.get(chain)
    if accounts is None:
        return _chain_parameters(chain, req)
    parameters = [
        ("getMaintenanceTimeInterval", 21_600_000),
        ("getCreateAccountFee", CREATE_ACCOUNT_FEE),
        ("getTransactionFee", accounts.transaction_fee),
        ("getCreateNewAccountFeeInSystemContract", CREATE_NEW_ACCOUNT_FEE),
        ("getCreateNewAccountBandwidthRate", 1),
        ("getEnergyFee", accounts.energy_fee),
        ("getAllowDelegateResource", 1),
        ("getTotalEnergyLimit", TOTAL_ENERGY_LIMIT),
        ("getTotalEnergyCurrentLimit", TOTAL_ENERGY_LIMIT),
        ("getAllowAdaptiveEnergy", 0),
        ("getUnfreezeDelayDays", 14),
    ]
    return {"chainParameter": [{"key": k} | ({"value": v} if v else {}) for k, v in parameters]}


def _token_constant(original: Route, solidity: bool) -> Route:
    def route(chain: FakeChain, req: Request) -> JsonValue:
        """`triggerconstantcontract` of a token kept here: balanceOf (at the solidified block on
        /walletsolidity), or a transfer's estimate; other contracts as before."""
        accounts, token = _ACCOUNTS.get(chain), _hex41_param(req, "contract_address")
        if accounts is None or token is None or token not in accounts.tokens:
            return original(chain, req)
        selector = str(req.params.get("function_selector", ""))
        data = (_selector(selector) if selector else "") + str(req.params.get("parameter", ""))
        if "data" in req.params and not selector:
            data = str(req.params["data"])
        owner = _hex41_param(req, "owner_address") or "41" + "00" * 20
        block = chain.solid if solidity else None
        if data.startswith(BALANCE_OF_SELECTOR):
            units = accounts.token_balance(token, "41" + data[8 + 24 : 8 + 64], block)
            return {"result": {"result": True}, "energy_used": 935, "constant_result": [_word(units)]}
        if data.startswith(TRANSFER_SELECTOR):
            recipient, units = "41" + data[8 + 24 : 8 + 64], int(data[72:136] or "0", 16)
            if accounts.token_balance(token, owner, block) < units:
                return {
                    "result": {"result": True, "message": _message(REVERT_MESSAGE)},
                    "energy_used": TOKEN_REVERT_ENERGY,
                    "constant_result": [""],
                    "transaction": {"ret": [{"ret": "FAILED"}]},
                }
            new_holder = accounts.token_balance(token, recipient, block) == 0
            energy = USDT_ENERGY_TO_NEW_HOLDER if new_holder else USDT_ENERGY_TO_HOLDER
            return {"result": {"result": True}, "energy_used": energy, "constant_result": ["00" * 32]}
        return {"result": {"result": True, "message": _message(REVERT_MESSAGE)}, "constant_result": [""]}

    return route


def _broadcast_accounts(chain: FakeChain, req: Request) -> JsonValue:
    """`wallet/broadcasttransaction`: this module's system contracts and token transfers here,
    every other transaction as before."""
    accounts, txid = _ACCOUNTS.get(chain), str(req.params.get("txID", ""))
    if accounts is not None:
        if txid in accounts.built:
            return accounts.broadcast_built(req)
        call = chain.built.get(txid)
        if call is not None and call.contract in accounts.tokens and call.data.startswith(TRANSFER_SELECTOR):
            return accounts.broadcast_token_transfer(chain, req, call)
    return _broadcast(chain, req)


def _rendered(route: Route) -> Route:
    def wrapped(chain: FakeChain, req: Request) -> JsonValue:
        answer = route(chain, req)
        accounts = _ACCOUNTS.get(chain)
        if accounts is None or not accounts.sent:
            return answer
        return accounts.render(answer, req.visible or req.query_visible)

    return wrapped


ROUTES.update(
    {
        "/wallet/createtransaction": _create_transaction,
        "/wallet/delegateresource": _resource_builder("DelegateResourceContract"),
        "/wallet/undelegateresource": _resource_builder("UnDelegateResourceContract"),
        "/wallet/getaccount": _get_account,
        "/wallet/getaccountresource": _accounts_resource(ROUTES["/wallet/getaccountresource"]),
        "/wallet/getcandelegatedmaxsize": _can_delegated_max_size,
        "/wallet/getchainparameters": _accounts_chain_parameters,
        "/wallet/broadcasttransaction": _broadcast_accounts,
        "/walletsolidity/triggerconstantcontract": _token_constant(
            ROUTES["/walletsolidity/triggerconstantcontract"], solidity=True
        ),
        "/wallet/triggerconstantcontract": _token_constant(ROUTES["/wallet/triggerconstantcontract"], solidity=False),
    }
)
for _path in [p for p in ROUTES if p.rsplit("/", 1)[-1].startswith(("getnowblock", "getblockby", "gettransaction"))]:
    ROUTES[_path] = _rendered(ROUTES[_path])
