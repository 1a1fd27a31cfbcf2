"""Tron for the sweep tool, with the standard library only: base58check addresses, the protobuf
of the four transactions the tool signs, a check that a node built exactly the transaction asked
for, a minimal client of a full node's HTTP API, and signing with a local key.

A full node builds Tron transactions (`wallet/createtransaction`, `triggersmartcontract`,
`delegateresource`, `undelegateresource`). The tool signs one only after encoding its `raw_data`
itself, from the call it asked for and the node's reference block and times, and finding it equal
to the node's `raw_data_hex` byte for byte; the node's JSON `raw_data` (which is what
`broadcasttransaction` re-serialises) must name the same call, and the txID is sha256 of those
bytes. A node that lies gets no signature for anything else.

Sources: java-tron's protos (core/Tron.proto `Transaction.raw`: ref_block_bytes 1, ref_block_hash
4, expiration 8, contract 11, timestamp 14, fee_limit 18; `Transaction.Contract`: type 1, parameter
2; core/contract/balance_contract.proto and smart_contract.proto for the contracts) and the
documented captures of `createtransaction` and `triggerconstantcontract` on Nile
(tronprotocol/documentation-en, docs/api/http/), which the tests encode byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NodeLied",
    "TronCall",
    "TronNodeClient",
    "TronNodeError",
    "base58check",
    "built_transaction",
    "from_base58check",
    "raw_data_bytes",
    "sign_transaction",
    "tron_address",
]

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
TRANSFER_SELECTOR = "a9059cbb"  # transfer(address,uint256)
BALANCE_OF_SELECTOR = "70a08231"  # balanceOf(address)
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
CONTRACT_TYPES = {
    "TransferContract": 1,
    "TriggerSmartContract": 31,
    "DelegateResourceContract": 57,
    "UnDelegateResourceContract": 58,
}
RESOURCE_CODES = {"BANDWIDTH": 0, "ENERGY": 1}
MAX_FEE_LIMIT_SUN = 15_000_000_000  # the chain's ceiling on fee_limit
MAX_EXPIRATION_MS = 24 * 3600 * 1000  # java-tron accepts a transaction for at most a day


class TronNodeError(Exception):
    """The node did not answer, or refused."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class NodeLied(Exception):
    """The node built another transaction than the one asked for: nothing was signed."""


# -- addresses ----------------------------------------------------------------------------------


def base58check(payload: bytes) -> str:
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rest = divmod(number, 58)
        out = ALPHABET[rest] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def from_base58check(text: str) -> bytes:
    """The 21-byte address of a `T...` string; ValueError when it is not one."""
    number = 0
    for char in text:
        if char not in ALPHABET:
            raise ValueError(f"{text!r} is not base58")
        number = number * 58 + ALPHABET.index(char)
    data = number.to_bytes(25, "big") if number.bit_length() <= 200 else b""
    payload, check = data[:-4], data[-4:]
    if len(payload) != 21 or hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != check:
        raise ValueError(f"{text!r} is not a Tron address (length or checksum)")
    if payload[0] != 0x41:
        raise ValueError(f"{text!r} is not a Tron address (prefix)")
    return payload


def tron_address(evm_address: str) -> str:
    """The Tron address of the key whose EVM address is `evm_address` (the same 20 bytes)."""
    return base58check(b"\x41" + bytes.fromhex(evm_address.removeprefix("0x")))


def hex41(address: str) -> str:
    """`T...` -> lowercase 41-prefixed hex, as the node's JSON writes addresses."""
    return from_base58check(address).hex()


# -- protobuf -----------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    """One protobuf field; a default value (0, empty) is left out, as protobuf writes it."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value) if value else b""
    return _varint(number << 3 | 2) + _varint(len(value)) + value if value else b""


@dataclass(frozen=True)
class TronCall:
    """One contract of a transaction, as the tool asks for it. Addresses are 41-hex.

    - `TransferContract`: owner, `to`, `amount` (sun);
    - `TriggerSmartContract`: owner, `to` (the contract), `data` (hex call data), no TRX sent;
    - `DelegateResourceContract` / `UnDelegateResourceContract`: owner, `to` (the receiver),
      `resource` (`ENERGY` or `BANDWIDTH`), `amount` (sun of staked TRX); never locked."""

    kind: str
    owner: str
    to: str
    amount: int = 0
    data: str = ""
    resource: str = ""

    def value_bytes(self) -> bytes:
        owner, to = bytes.fromhex(self.owner), bytes.fromhex(self.to)
        if self.kind == "TransferContract":
            return _field(1, owner) + _field(2, to) + _field(3, self.amount)
        if self.kind == "TriggerSmartContract":
            return _field(1, owner) + _field(2, to) + _field(4, bytes.fromhex(self.data))
        return _field(1, owner) + _field(2, RESOURCE_CODES[self.resource]) + _field(3, self.amount) + _field(4, to)

    def value_json(self) -> dict[str, Any]:
        """The contract's JSON `value` (visible=false) with protobuf-JSON's defaults left out."""
        if self.kind == "TransferContract":
            return {"amount": self.amount, "owner_address": self.owner, "to_address": self.to}
        if self.kind == "TriggerSmartContract":
            return {"data": self.data, "owner_address": self.owner, "contract_address": self.to}
        value: dict[str, Any] = {"owner_address": self.owner, "balance": self.amount, "receiver_address": self.to}
        if self.resource != "BANDWIDTH":
            value["resource"] = self.resource
        return value

    def request(self) -> tuple[str, dict[str, Any]]:
        """The node endpoint that builds it, and the body to send (visible=false)."""
        if self.kind == "TransferContract":
            body: dict[str, Any] = {"owner_address": self.owner, "to_address": self.to, "amount": self.amount}
            return "wallet/createtransaction", body | {"visible": False}
        if self.kind == "TriggerSmartContract":
            raise ValueError("a contract call is built with its fee limit: built_call()")
        body = {"owner_address": self.owner, "receiver_address": self.to, "balance": self.amount}
        body["resource"] = self.resource
        if self.kind == "DelegateResourceContract":
            body["lock"] = False
            return "wallet/delegateresource", body | {"visible": False}
        return "wallet/undelegateresource", body | {"visible": False}


# Fields a contract's JSON value may hold at their default without changing the transaction.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "TransferContract": {},
    "TriggerSmartContract": {"call_value": 0, "call_token_value": 0, "token_id": 0},
    "DelegateResourceContract": {"resource": "BANDWIDTH", "lock": False, "lock_period": 0},
    "UnDelegateResourceContract": {"resource": "BANDWIDTH"},
}


def raw_data_bytes(
    call: TronCall, *, ref_block_bytes: bytes, ref_block_hash: bytes, expiration: int, timestamp: int, fee_limit: int
) -> bytes:
    """`Transaction.raw` of one contract, fields in number order as java-tron serialises them."""
    kind = call.kind
    parameter = _field(1, f"type.googleapis.com/protocol.{kind}".encode()) + _field(2, call.value_bytes())
    contract = _field(1, CONTRACT_TYPES[kind]) + _field(2, parameter)
    return (
        _field(1, ref_block_bytes)
        + _field(4, ref_block_hash)
        + _field(8, expiration)
        + _field(11, contract)
        + _field(14, timestamp)
        + _field(18, fee_limit)
    )


def tx_bandwidth(raw: bytes) -> int:
    """Bandwidth bytes a transaction with one signature costs: its serialized size (raw_data and
    the 65-byte signature) plus 64 for the result (java-tron BandwidthProcessor)."""
    return 1 + len(_varint(len(raw))) + len(raw) + 2 + 65 + 64


def built_transaction(call: TronCall, fee_limit: int, tx: Any) -> dict[str, Any]:
    """The node's unsigned transaction for `call`, checked to be exactly that call: its JSON
    `raw_data` names it and nothing more, `raw_data_hex` is its encoding with the node's
    reference block and times, `fee_limit` is the one asked for (0 for a system contract), and
    `txID` is sha256 of those bytes. Raises NodeLied otherwise. Returns the body to broadcast
    (without its signature)."""
    if not isinstance(tx, Mapping):
        raise NodeLied(f"the node answered no transaction: {str(tx)[:200]}")
    raw = tx.get("raw_data")
    if not isinstance(raw, Mapping):
        raise NodeLied("the node's transaction has no raw_data")
    allowed = {"contract", "ref_block_bytes", "ref_block_hash", "expiration", "timestamp"}
    if call.kind == "TriggerSmartContract":
        allowed.add("fee_limit")
    if set(raw) - allowed:
        raise NodeLied(f"the node's raw_data holds more than asked: {sorted(set(raw) - allowed)}")
    contracts = raw.get("contract")
    if not isinstance(contracts, list) or len(contracts) != 1 or not isinstance(contracts[0], Mapping):
        raise NodeLied("the node's raw_data does not hold exactly one contract")
    contract = contracts[0]
    if set(contract) - {"parameter", "type"} or contract.get("type") != call.kind:
        raise NodeLied(f"the node built a {contract.get('type')}, not a {call.kind}")
    parameter = contract.get("parameter")
    type_url = f"type.googleapis.com/protocol.{call.kind}"
    if not isinstance(parameter, Mapping) or parameter.get("type_url") != type_url:
        raise NodeLied("the node's contract parameter is not the one asked for")
    value = {k: v for k, v in dict(parameter.get("value") or {}).items() if _DEFAULTS[call.kind].get(k, object()) != v}
    if value != call.value_json():
        raise NodeLied(f"the node built another {call.kind} than asked: {value} instead of {call.value_json()}")
    if call.kind != "TriggerSmartContract" and raw.get("fee_limit", 0) != 0:
        raise NodeLied("the node set a fee limit on a system contract")
    if int(raw.get("fee_limit", 0)) != fee_limit:
        raise NodeLied(f"the node set fee_limit {raw.get('fee_limit')}, not {fee_limit}")
    try:
        ref_bytes, ref_hash = bytes.fromhex(str(raw["ref_block_bytes"])), bytes.fromhex(str(raw["ref_block_hash"]))
        expiration, timestamp = int(raw["expiration"]), int(raw.get("timestamp", 0))
    except (KeyError, ValueError, TypeError) as exc:
        raise NodeLied(f"the node's raw_data is malformed: {exc}") from None
    if len(ref_bytes) != 2 or len(ref_hash) != 8 or not 0 < expiration - timestamp <= MAX_EXPIRATION_MS:
        raise NodeLied("the node's reference block or expiration is out of shape")
    expected = raw_data_bytes(
        call,
        ref_block_bytes=ref_bytes,
        ref_block_hash=ref_hash,
        expiration=expiration,
        timestamp=timestamp,
        fee_limit=fee_limit,
    )
    if tx.get("raw_data_hex") != expected.hex():
        raise NodeLied(f"the node's raw_data_hex is not the {call.kind} asked for")
    txid = hashlib.sha256(expected).hexdigest()
    if tx.get("txID") != txid:
        raise NodeLied("the node's txID is not sha256 of raw_data")
    return {"visible": False, "txID": txid, "raw_data": json.loads(json.dumps(raw)), "raw_data_hex": expected.hex()}


def sign_transaction(account: Any, body: Mapping[str, Any]) -> str:
    """The signature (hex, r ‖ s ‖ recovery id 0/1) of a checked transaction by `account`, an
    eth_account LocalAccount: secp256k1 over sha256(raw_data), as Tron signs."""
    digest = hashlib.sha256(bytes.fromhex(str(body["raw_data_hex"]))).digest()
    signed = account.unsafe_sign_hash(digest)
    r, s, v = int(signed.r), int(signed.s), int(signed.v)
    return (r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v - 27])).hex()


# -- the node -----------------------------------------------------------------------------------


class TronNodeClient:
    """A full node's HTTP API (POST with a JSON body, as java-tron and TronGrid take it), standard
    library only. `api_key` goes in TronGrid's TRON-PRO-API-KEY header."""

    def __init__(self, url: str, *, timeout: float = 30.0, api_key: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise TronNodeError("--rpc-url must be an http(s) URL")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key

    def call(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["TRON-PRO-API-KEY"] = self.api_key
        data = json.dumps(dict(body or {})).encode()
        # The operator's own node; the scheme is checked in __init__.
        request = urllib.request.Request(f"{self.url}/{path}", data, headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = json.loads(response.read() or b"{}")
        except (OSError, ValueError) as exc:
            raise TronNodeError(f"{path}: the node did not answer: {exc}") from None
        if isinstance(answer, dict) and "Error" in answer:
            raise TronNodeError(f"{path}: the node refused: {answer['Error']}")
        return answer

    # reads

    def chain_id(self) -> int:
        """The chain id: the last 4 bytes of the genesis block id (java-tron's eth_chainId)."""
        genesis = self.call("wallet/getblockbynum", {"num": 0})
        block_id = str(genesis.get("blockID", "")) if isinstance(genesis, dict) else ""
        if len(block_id) != 64:
            raise TronNodeError("wallet/getblockbynum 0: no genesis block")
        return int(block_id[-8:], 16)

    def solid_block(self) -> tuple[int, int]:
        """(number, timestamp ms) of the solidified head."""
        block = self.call("walletsolidity/getnowblock")
        raw = (block or {}).get("block_header", {}).get("raw_data", {}) if isinstance(block, dict) else {}
        return int(raw.get("number", 0)), int(raw.get("timestamp", 0))

    def chain_parameters(self) -> dict[str, int]:
        answer = self.call("wallet/getchainparameters")
        params = answer.get("chainParameter", []) if isinstance(answer, dict) else []
        return {str(p["key"]): int(p.get("value", 0)) for p in params if isinstance(p, dict) and "key" in p}

    def account(self, address: str) -> dict[str, Any]:
        """protocol.Account, or {} for an account not activated."""
        answer = self.call("wallet/getaccount", {"address": hex41(address), "visible": False})
        return dict(answer) if isinstance(answer, dict) else {}

    def resources(self, address: str) -> dict[str, int]:
        """getaccountresource with the absent (zero) fields as 0."""
        answer = self.call("wallet/getaccountresource", {"address": hex41(address), "visible": False})
        keys = (
            "freeNetUsed",
            "freeNetLimit",
            "NetUsed",
            "NetLimit",
            "EnergyUsed",
            "EnergyLimit",
            "TotalNetLimit",
            "TotalNetWeight",
            "TotalEnergyLimit",
            "TotalEnergyWeight",
        )
        found = answer if isinstance(answer, dict) else {}
        return {k: int(found.get(k, 0)) for k in keys}

    def can_delegate(self, address: str, resource: str) -> int:
        """getcandelegatedmaxsize: the sun of staked TRX `address` can delegate for `resource`."""
        body = {"owner_address": hex41(address), "type": RESOURCE_CODES[resource], "visible": False}
        answer = self.call("wallet/getcandelegatedmaxsize", body)
        return int(answer.get("max_size", 0)) if isinstance(answer, dict) else 0

    def constant(self, owner: str, contract: str, data: str, *, solidified: bool) -> dict[str, Any]:
        body = {
            "owner_address": hex41(owner),
            "contract_address": hex41(contract),
            "data": data,
            "visible": False,
        }
        path = "walletsolidity/triggerconstantcontract" if solidified else "wallet/triggerconstantcontract"
        answer = self.call(path, body)
        return dict(answer) if isinstance(answer, dict) else {}

    def token_balance(self, token: str, holder: str) -> int:
        """balanceOf(holder) at the solidified block."""
        data = BALANCE_OF_SELECTOR + "00" * 12 + hex41(holder)[2:]
        answer = self.constant(holder, token, data, solidified=True)
        results = answer.get("constant_result") or []
        if answer.get("result", {}).get("result") is not True or not results or not results[0]:
            raise TronNodeError(f"balanceOf({holder}) failed: {answer.get('result')}")
        return int(str(results[0]), 16)

    def transfer_energy(self, owner: str, token: str, to: str, units: int) -> int | None:
        """The energy `transfer(to, units)` from `owner` costs now, as triggerconstantcontract
        measures it; None when the node gives no figure or the call would fail."""
        answer = self.constant(owner, token, transfer_data(to, units), solidified=False)
        rets = (answer.get("transaction") or {}).get("ret") or [{}]
        if answer.get("result", {}).get("result") is not True or rets[0].get("ret") == "FAILED":
            return None
        used = int(answer.get("energy_used", 0))
        return used or None

    def info(self, txid: str, *, solidified: bool) -> dict[str, Any]:
        """TransactionInfo once a block holds the transaction (at or below the solidified head
        when `solidified`), else {}."""
        path = "walletsolidity/gettransactioninfobyid" if solidified else "wallet/gettransactioninfobyid"
        answer = self.call(path, {"value": txid})
        return dict(answer) if isinstance(answer, dict) and answer.get("blockNumber") is not None else {}

    # writes

    def build(self, call: TronCall, fee_limit: int = 0) -> dict[str, Any]:
        """The node's transaction for `call`, checked (NodeLied if it is another)."""
        if call.kind == "TriggerSmartContract":
            path = "wallet/triggersmartcontract"
            body = {
                "owner_address": call.owner,
                "contract_address": call.to,
                "data": call.data,
                "fee_limit": fee_limit,
                "call_value": 0,
                "visible": False,
            }
            answer = self.call(path, body)
            result = answer.get("result", {}) if isinstance(answer, dict) else {}
            if result.get("result") is not True or "transaction" not in answer:
                raise TronNodeError(f"{path}: {result.get('code', 'no transaction')}: {_text(result.get('message'))}")
            return built_transaction(call, fee_limit, answer["transaction"])
        path, body = call.request()
        return built_transaction(call, 0, self.call(path, body))

    def broadcast(self, body: Mapping[str, Any]) -> str | None:
        """Send a signed transaction. None when the node took it; the refusal code when it has it
        already, or the transaction cannot be taken any more (expired, or its reference block is
        not on the node's chain); raises TronNodeError for any other refusal."""
        answer = self.call("wallet/broadcasttransaction", body)
        if isinstance(answer, dict) and answer.get("result") is True:
            return None
        code = str(answer.get("code", "refused")) if isinstance(answer, dict) else "refused"
        if code in ("DUP_TRANSACTION_ERROR", "TRANSACTION_EXPIRATION_ERROR", "TAPOS_ERROR"):
            return code
        message = _text(answer.get("message")) if isinstance(answer, dict) else str(answer)
        raise TronNodeError(f"broadcasttransaction: {code}: {message}", code=code)


def transfer_data(to: str, units: int) -> str:
    """Call data of transfer(to, units) (hex, no 0x); `to` in base58."""
    return TRANSFER_SELECTOR + "00" * 12 + hex41(to)[2:] + f"{units:064x}"


def _text(message: Any) -> str:
    """java-tron hex-encodes messages with visible=false; show them as text."""
    text = str(message or "")
    try:
        return bytes.fromhex(text).decode()
    except ValueError:
        return text


def moved_units(info: Mapping[str, Any], token: str, sender: str, to: str) -> int:
    """The units the receipt's Transfer logs of `token` moved from `sender` to `to` (log address
    20-byte hex without 41, topics without 0x, as java-tron writes them with visible=false)."""
    token20, sender20, to20 = hex41(token)[2:], hex41(sender)[2:], hex41(to)[2:]
    total = 0
    for log in info.get("log") or []:
        topics = [str(t).lower() for t in log.get("topics") or []]
        if (
            str(log.get("address", "")).lower()[-40:] == token20
            and len(topics) == 3
            and topics[0] == TRANSFER_TOPIC
            and topics[1][-40:] == sender20
            and topics[2][-40:] == to20
        ):
            total += int(str(log.get("data") or "0"), 16)
    return total
