"""Tron transactions of the settlement: a `sweep(token, salts)` or `refund(...)` call to a merchant's factory, built
by a full node's `wallet/triggersmartcontract`, checked here, signed through the relayer's KMS key,
sent with `wallet/broadcasttransaction`, and its outcome (energy, fee, result) read from
`wallet/gettransactioninfobyid`.

The node builds the transaction, but the relayer signs only what it asked for: the `raw_data`
protobuf is encoded here from the intended fields (the call, the fee limit) and the node's
reference block and times, and must equal the node's `raw_data_hex` byte for byte; the txID is
sha256 of those bytes. Tron signs that sha256 as given (KMS `MessageType=DIGEST`); the signature is
r ‖ s ‖ v, 65 bytes, v the recovery id 0 or 1, low s.

No tronpy here: the provider is anything with tronpy's `make_request(method, params)`.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

from usdt_gateway.address_codec import keccak256, tron_body20
from usdt_gateway.chain.tron import Provider
from usdt_gateway.tron_energy import MAX_FEE_LIMIT_SUN as MAX_FEE_LIMIT_SUN  # the chain's ceiling (maxFeeLimit)

SWEEP_SIGNATURE = "sweep(address,bytes32[])"
REFUND_SIGNATURE = "refund(address,bytes32,address,uint256,uint256,uint256,bytes)"
TRIGGER_SMART_CONTRACT = 31  # Transaction.Contract.ContractType
TRIGGER_TYPE_URL = "type.googleapis.com/protocol.TriggerSmartContract"


class TronTxError(Exception):
    """The node refused to build or accept a transaction, or built another one than asked for.
    `code` is the node's refusal code (`DUP_TRANSACTION_ERROR`, ...) when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


# -- protobuf (only the fields a TriggerSmartContract transaction carries) --------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    """A protobuf field; a default value (0, empty) is left out, as protobuf serialises it."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value) if value else b""
    return _varint(number << 3 | 2) + _varint(len(value)) + value if value else b""


def trigger_raw_data(
    *,
    owner: bytes,
    contract: bytes,
    data: bytes,
    fee_limit: int,
    ref_block_bytes: bytes,
    ref_block_hash: bytes,
    expiration: int,
    timestamp: int,
) -> bytes:
    """The `Transaction.raw` protobuf of a TriggerSmartContract call without TRX (21-byte addresses)."""
    call = _field(1, owner) + _field(2, contract) + _field(4, data)
    parameter = _field(1, TRIGGER_TYPE_URL.encode()) + _field(2, call)
    contract_msg = _field(1, TRIGGER_SMART_CONTRACT) + _field(2, parameter)
    return (
        _field(1, ref_block_bytes)
        + _field(4, ref_block_hash)
        + _field(8, expiration)
        + _field(11, contract_msg)
        + _field(14, timestamp)
        + _field(18, fee_limit)
    )


# -- the sweep call ---------------------------------------------------------------------------------


def _hex41(address: str) -> bytes:
    return b"\x41" + tron_body20(address)


def sweep_parameter(token: str, salts: list[bytes]) -> bytes:
    """The ABI arguments of `sweep(token, salts)`: the token's 20-byte body, then bytes32[]."""
    if any(len(s) != 32 for s in salts):
        raise ValueError("a salt is 32 bytes")
    head = bytes(12) + tron_body20(token) + (64).to_bytes(32)
    return head + len(salts).to_bytes(32) + b"".join(salts)


@dataclass(frozen=True)
class TronTransaction:
    """A transaction as the node's JSON holds it; `signature` is empty until signed."""

    txid: str
    raw_data: dict[str, Any]
    raw_data_hex: str
    signature: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The body `wallet/broadcasttransaction` takes."""
        body: dict[str, Any] = {"visible": False, "txID": self.txid, "raw_data": self.raw_data}
        body["raw_data_hex"] = self.raw_data_hex
        if self.signature:
            body["signature"] = list(self.signature)
        return body


def build_sweep(
    provider: Provider, *, owner: str, factory: str, token: str, salts: list[bytes], fee_limit: int
) -> TronTransaction:
    """The node's transaction for `factory.sweep(token, salts)` from `owner`, at most `fee_limit`
    sun burned for energy, checked to be exactly that call before anyone signs it."""
    parameter = sweep_parameter(token, salts)
    return build_call(
        provider, owner=owner, contract=factory, signature=SWEEP_SIGNATURE, parameter=parameter, fee_limit=fee_limit
    )


def build_call(
    provider: Provider, *, owner: str, contract: str, signature: str, parameter: bytes, fee_limit: int
) -> TronTransaction:
    """The node's transaction for `contract.<signature>(<parameter>)` (ABI-encoded arguments) from
    `owner`, checked to be exactly that call before anyone signs it."""
    if not 0 < fee_limit <= MAX_FEE_LIMIT_SUN:
        raise ValueError(f"fee_limit is 1 to {MAX_FEE_LIMIT_SUN} sun, not {fee_limit}")
    factory = contract
    answer = provider.make_request(
        "wallet/triggersmartcontract",
        {
            "owner_address": _hex41(owner).hex(),
            "contract_address": _hex41(factory).hex(),
            "function_selector": signature,
            "parameter": parameter.hex(),
            "fee_limit": fee_limit,
            "call_value": 0,
            "visible": False,
        },
    )
    result = answer.get("result", {}) if isinstance(answer, dict) else {}
    if result.get("result") is not True or "transaction" not in answer:
        message = bytes.fromhex(result.get("message", "")).decode(errors="replace") if result else str(answer)
        raise TronTxError(f"triggersmartcontract: {result.get('code', 'no transaction')}: {message}")
    tx = answer["transaction"]
    raw = tx["raw_data"]
    expected = trigger_raw_data(
        owner=_hex41(owner),
        contract=_hex41(factory),
        data=keccak256(signature.encode())[:4] + parameter,
        fee_limit=fee_limit,
        ref_block_bytes=bytes.fromhex(raw["ref_block_bytes"]),
        ref_block_hash=bytes.fromhex(raw["ref_block_hash"]),
        expiration=int(raw["expiration"]),
        timestamp=int(raw.get("timestamp", 0)),
    )
    if tx.get("raw_data_hex") != expected.hex():
        raise TronTxError(f"the node built another transaction than {signature} asked for")
    txid = hashlib.sha256(expected).hexdigest()
    if tx.get("txID") != txid:
        raise TronTxError("the node's txID is not sha256 of raw_data")
    return TronTransaction(txid=txid, raw_data=raw, raw_data_hex=expected.hex())


def sign(signer: Any, tx: TronTransaction) -> TronTransaction:
    """`tx` signed by a KmsSigner: its 65-byte signature of sha256(raw_data)."""
    signature = signer.sign_tron_transaction(bytes.fromhex(tx.raw_data_hex))
    return TronTransaction(tx.txid, tx.raw_data, tx.raw_data_hex, (signature.hex(),))


def broadcast(provider: Provider, tx: TronTransaction) -> str:
    """Send a signed transaction; its txid once the node accepted it."""
    answer = provider.make_request("wallet/broadcasttransaction", tx.to_json())
    if not isinstance(answer, dict) or answer.get("result") is not True:
        code = answer.get("code", "refused") if isinstance(answer, dict) else "refused"
        message = answer.get("message", "") if isinstance(answer, dict) else ""
        with contextlib.suppress(ValueError):  # java-tron hex-encodes it; show it as text
            message = bytes.fromhex(message).decode(errors="replace")
        raise TronTxError(f"broadcasttransaction: {code}: {message}", code=str(code))
    return tx.txid


# -- the outcome ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TronOutcome:
    """What a mined transaction did and cost. `result` is the receipt's (`SUCCESS`, `REVERT`,
    `OUT_OF_ENERGY`, ...); `fee` is all the sun it burned (energy and bandwidth). `energy_used` is
    the total (`energy_usage_total`): `energy_staked` of it came from the relayer's staked energy
    (`energy_usage`), the rest was burned for `energy_fee` sun; `net_fee` is the sun burned for
    bandwidth when free and staked bandwidth did not cover it."""

    txid: str
    block: int
    result: str
    energy_used: int
    energy_fee: int
    fee: int
    energy_staked: int = 0
    net_fee: int = 0

    @property
    def succeeded(self) -> bool:
        return self.result == "SUCCESS"


def outcome(provider: Provider, txid: str) -> TronOutcome | None:
    """The transaction's outcome, or None while no block holds it (the node answers `{}`).
    protobuf-JSON leaves zero fields out, so an absent number is 0."""
    info = provider.make_request("wallet/gettransactioninfobyid", {"value": txid})
    if not isinstance(info, dict) or info.get("blockNumber") is None:
        return None
    receipt = info.get("receipt", {})
    result = str(receipt.get("result", "FAILED" if info.get("result") == "FAILED" else "SUCCESS"))
    if info.get("result") == "FAILED" and result == "SUCCESS":
        result = "FAILED"
    return TronOutcome(
        txid=txid,
        block=int(info["blockNumber"]),
        result=result,
        energy_used=int(receipt.get("energy_usage_total", 0)),
        energy_fee=int(receipt.get("energy_fee", 0)),
        fee=int(info.get("fee", 0)),
        energy_staked=int(receipt.get("energy_usage", 0)),
        net_fee=int(receipt.get("net_fee", 0)),
    )


# -- reads: balances and the energy price -------------------------------------------------------------

BALANCE_OF_SIGNATURE = "balanceOf(address)"


def call_view(provider: Provider, contract: str, signature: str, parameter: bytes) -> bytes:
    """The return data of a read-only call (`wallet/triggerconstantcontract`, the head's state);
    TronTxError when the node does not answer it or the call reverts."""
    answer = provider.make_request(
        "wallet/triggerconstantcontract",
        {
            "owner_address": _hex41(contract).hex(),
            "contract_address": _hex41(contract).hex(),
            "function_selector": signature,
            "parameter": parameter.hex(),
            "visible": False,
        },
    )
    result = answer.get("result", {}) if isinstance(answer, dict) else {}
    words = answer.get("constant_result") if isinstance(answer, dict) else None
    if result.get("result") is not True or not isinstance(words, list) or len(words) != 1:
        raise TronTxError(f"{signature} on {contract} was not answered: {answer}")
    return bytes.fromhex(str(words[0]))


def token_balance(provider: Provider, token: str, holder: str, *, solidified: bool = False) -> int:
    """`holder`'s balance of the TRC-20 `token` (`balanceOf` through triggerconstantcontract; in
    the solidified state, `walletsolidity/`, with `solidified`); TronTxError when the node does not
    answer it."""
    answer = provider.make_request(
        "walletsolidity/triggerconstantcontract" if solidified else "wallet/triggerconstantcontract",
        {
            "owner_address": _hex41(token).hex(),
            "contract_address": _hex41(token).hex(),
            "function_selector": BALANCE_OF_SIGNATURE,
            "parameter": tron_body20(holder).rjust(32, b"\x00").hex(),
            "visible": False,
        },
    )
    result = answer.get("result", {}) if isinstance(answer, dict) else {}
    words = answer.get("constant_result") if isinstance(answer, dict) else None
    if result.get("result") is not True or not isinstance(words, list) or len(words) != 1 or len(words[0]) != 64:
        raise TronTxError(f"balanceOf({holder}) on {token} was not answered: {answer}")
    return int(words[0], 16)


def trx_balance(provider: Provider, address: str) -> int:
    """The account's TRX balance in sun (`wallet/getaccount`; an account the chain does not know
    yet, `{}`, holds nothing)."""
    account = provider.make_request("wallet/getaccount", {"address": _hex41(address).hex(), "visible": False})
    if not isinstance(account, dict):
        raise TronTxError(f"getaccount answered {account!r}")
    return int(account.get("balance", 0))


def energy_price(provider: Provider) -> int:
    """Sun per unit of energy burned: the chain parameter `getEnergyFee`."""
    answer = provider.make_request("wallet/getchainparameters", {})
    entries = (answer.get("chainParameter") or []) if isinstance(answer, dict) else []
    for entry in entries:
        if entry.get("key") == "getEnergyFee":
            return int(entry.get("value", 0))  # protobuf-JSON leaves a zero value out
    raise TronTxError("the node's chain parameters hold no getEnergyFee")
