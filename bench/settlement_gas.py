"""Gas per swept deposit of contract-mode settlement, on anvil: one DepositFactory.sweep of 1, 10
and 100 deposit addresses, fresh (the sweep deploys each deposit clone) and reused (the clones
were deployed by an earlier sweep and paid again), beside the naive sweep of xpub addresses
measured in the same run (for each address: an ether transfer for its gas, then its own token
transfer to the treasury).

    .venv/bin/python -m bench.settlement_gas [--json]

Setup: a fresh anvil (automine, London rules, base fee as anvil sets it), the repo's TestUSDT
(transfer returns true), the committed Deposit and DepositFactory artifacts. Every deposit address
holds 1 USDT before its sweep; the treasury already holds USDT (as after the first sweep), so its
balance update is the same in every row. Gas is the receipt's gasUsed (after refunds), divided by
the number of addresses; the payments themselves are not counted.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.contract import Contract
from web3.types import Nonce, TxParams, Wei

from devstack.evm import deploy_token, mint, start_anvil
from devstack.settlement_contracts import deploy_deposit_implementation, deploy_factory
from usdt_gateway.create2 import deposit_address

SIZES = (1, 10, 100)
UNIT = 1_000_000  # 1 USDT


def _receipt(w3: Web3, tx_hash: Any) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.02)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def _sweep_gas(w3: Web3, factory: Contract, token: Contract, salts: list[bytes], relayer: str) -> int:
    receipt = _receipt(w3, factory.functions.sweep(token.address, salts).transact({"from": relayer}))
    return int(receipt["gasUsed"])


def _naive_gas(w3: Web3, token: Contract, owner: str, relayer: str, treasury: str, n: int) -> int:
    """Gas of sweeping `n` xpub-style addresses: fund each with gas, then each sends its USDT."""
    total = 0
    price = 2 * int(w3.eth.get_block("latest")["baseFeePerGas"]) + 10**9
    for _ in range(n):
        holder = Account.create()
        mint(token, holder.address, UNIT, owner=owner)
        params: TxParams = {
            "from": holder.address,
            "nonce": Nonce(0),
            "gas": 100_000,
            "maxFeePerGas": Wei(price),
            "maxPriorityFeePerGas": Wei(10**9),
        }
        transfer = token.functions.transfer(treasury, UNIT).build_transaction(params)
        funding = _receipt(
            w3, w3.eth.send_transaction({"from": relayer, "to": holder.address, "value": Wei(100_000 * price)})
        )
        signed = holder.sign_transaction(transfer)
        sent = _receipt(w3, w3.eth.send_raw_transaction(signed.raw_transaction))
        total += int(funding["gasUsed"]) + int(sent["gasUsed"])
    return total


def run() -> dict[str, Any]:
    with start_anvil() as anvil:
        w3 = anvil.web3()
        accounts = [str(a) for a in w3.eth.accounts]
        owner, relayer = accounts[0], accounts[1]
        treasury = str(Account.create().address)
        token = deploy_token(w3, owner)
        implementation = deploy_deposit_implementation(w3, owner)
        factory = deploy_factory(
            w3, owner, treasury=treasury, owner=Account.create().address, implementation=implementation.address
        )
        mint(token, treasury, UNIT, owner=owner)  # the treasury's balance slot is warm in every row

        def pay(salts: list[bytes]) -> None:
            for salt in salts:
                address = Web3.to_checksum_address(deposit_address(factory.address, implementation.address, salt))
                mint(token, address, UNIT, owner=owner)

        rows = []
        for n in SIZES:
            salts = [secrets.token_bytes(32) for _ in range(n)]
            pay(salts)
            fresh = _sweep_gas(w3, factory, token, salts, relayer)
            pay(salts)
            reused = _sweep_gas(w3, factory, token, salts, relayer)
            naive = _naive_gas(w3, token, owner, relayer, treasury, n)
            rows.append(
                {
                    "deposits": n,
                    "fresh_per_deposit": fresh // n,
                    "reused_per_deposit": reused // n,
                    "naive_per_address": naive // n,
                    "fresh_vs_naive": round(fresh / naive, 3),
                    "reused_vs_naive": round(reused / naive, 3),
                }
            )
        return {"chain": "anvil", "token": "TestUSDT", "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("deposits  fresh/deposit  reused/deposit  naive/address  fresh:naive  reused:naive")
    for r in result["rows"]:
        print(
            f"{r['deposits']:>8}  {r['fresh_per_deposit']:>13,}  {r['reused_per_deposit']:>14,}  "
            f"{r['naive_per_address']:>13,}  {r['fresh_vs_naive']:>11.0%}  {r['reused_vs_naive']:>12.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
