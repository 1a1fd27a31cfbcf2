"""Refunds and settlements as the gateway sends them (REFUND_API, SettlementView), built for the
tests with eth_account, independently of the SDK's own encoder."""

from __future__ import annotations

import copy
from typing import Any

from eth_account.messages import encode_typed_data
from web3 import Web3

ETH_USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
FACTORY = "0x" + "fa" * 20
PAYER = "0x" + "be" * 20
SALT = "0x" + "5a" * 32
FAR_FUTURE = 2**40  # a deadline no test outlives
OWNER = "0x" + "0e" * 20

SETTLEMENT: dict[str, Any] = {
    "settlementId": "stl_" + "ab" * 12,
    "network": "eth",
    "status": "completed",
    "factory": FACTORY,
    "tokenContract": ETH_USDT,
    "amount": "150.000001",
    "orders": ["o-1", "o-2"],
    "deposits": ["eth:0x1:0", "eth:0x2:3"],
    "txHash": "0x" + "77" * 32,
    "gasPaid": "123456789012345678",
    "reason": None,
    "createdAt": 1764599000000,
    "closedAt": 1764599060123,
}


def typed_data(
    *,
    chain_id: Any = 1,
    factory: str = FACTORY,
    token: str = ETH_USDT,
    salt: str = SALT,
    to: str = PAYER,
    amount: Any = "12500000",
    nonce: Any = "340282366920938463463374607431768211457",
    deadline: Any = FAR_FUTURE,
) -> dict[str, Any]:
    """The typed data of REFUND_API.md: amount and nonce as decimal strings."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Refund": [
                {"name": "token", "type": "address"},
                {"name": "salt", "type": "bytes32"},
                {"name": "to", "type": "address"},
                {"name": "amount", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Refund",
        "domain": {"name": "USDT Gateway Deposits", "version": "1", "chainId": chain_id, "verifyingContract": factory},
        "message": {"token": token, "salt": salt, "to": to, "amount": amount, "nonce": nonce, "deadline": deadline},
    }


def eth_account_digest(typed: dict[str, Any]) -> bytes:
    """The EIP-712 digest as eth_account computes it (it reads uint256 decimal strings too)."""
    signable = encode_typed_data(full_message=copy.deepcopy(typed))
    return bytes(Web3.keccak(b"\x19" + bytes(signable.version) + bytes(signable.header) + bytes(signable.body)))


def refund_json(typed: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A Refund object awaiting its signature, with the typed data's digest (computed only when
    `fields` give none); `fields` override."""
    typed = typed_data() if typed is None else typed
    message = typed["message"] if isinstance(typed.get("message"), dict) else typed_data()["message"]
    refund = {
        "refundId": "rfd_" + "0c" * 12,
        "orderId": "o-1",
        "network": "eth",
        "status": "awaiting_signature",
        "to": message.get("to", PAYER),
        "amount": "12.5",
        "depositAddress": "0x" + "de" * 20,
        "factory": typed["domain"].get("verifyingContract", FACTORY),
        "tokenContract": message.get("token", ETH_USDT),
        "owner": OWNER,
        "deadline": message.get("deadline", FAR_FUTURE),
        "typedData": typed,
        "txHash": None,
        "gasPaid": None,
        "reason": None,
        "createdAt": 1764599000000,
        "updatedAt": 1764599000000,
    }
    refund.update(fields)
    if "digest" not in refund:
        refund["digest"] = "0x" + eth_account_digest(typed).hex()
    return refund
