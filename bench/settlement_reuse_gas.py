"""Gas per settled order of contract mode through the gateway's own path, on anvil: orders created
by orders.create_order, paid, credited by the scanner and swept by the settlement's runs (its
relayer's key in the local KMS), first on fresh addresses, then on the addresses the reuse pool
hands back to the next orders; beside the naive sweep of xpub addresses measured in the same run
(bench/settlement_gas.py: an ether transfer for gas, then the address's own token transfer).

    .venv/bin/python -m bench.settlement_reuse_gas [--json] [--sizes 1,10,99]

Setup, all in this process: an AtomicMotoServer on a free port (the table from template.yaml, a
KMS key for the relayer), anvil (automine) with the repo's TestUSDT, the committed Deposit and
DepositFactory artifacts, network `local` (2 confirmations), a merchant per size in contract mode
with reuse on and a quarantine of 0 h (what is measured is the path through the pool, not the
wait), a late-payment grace of 60 s and orders of 10 minutes; the gateway's clock follows the
chain's. Per size n (1, 10, 99: a sweep covers at most 99 deposits, one claim transaction):

    round 1   n orders, each paid 1 USDT and credited to it (checked); the settlement sweeps them
              in one sweep (its minimum is 0 and its batch n): gas of the sweep that deploys n
              clones
    pool      15 minutes pass, beyond the orders' windows and grace; the scanner closes the
              orders; the settlement's runs put the n swept addresses into the pool (quarantine,
              then available)
    round 2   n new orders, each of which must get one of those addresses from the pool; paid,
              credited and swept the same way: gas of the sweep of n reused clones, whose
              receipt must hold no DepositDeployed log

Gas is the sweep receipt's gasUsed divided by n; the payments themselves are not counted. The
treasury holds USDT before the first sweep, as in bench/settlement_gas.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from eth_account import Account
from web3 import Web3

from bench.local_aws import point_at_moto
from bench.settlement_gas import _naive_gas
from devstack.evm import Anvil, deploy_token, mint, start_anvil
from devstack.moto_server import AtomicMotoServer
from devstack.settlement_contracts import deploy_deposit_implementation, deploy_factory

SIZES = (1, 10, 99)
UNIT = 1_000_000  # 1 USDT
TABLE = "bench-settlement-reuse"
NETWORK = "local"
CONFIRMATIONS = 2
DEPLOYED_TOPIC = "0x" + Web3.keccak(text="DepositDeployed(address,bytes32)").hex().removeprefix("0x")


@dataclass
class Clock:
    ms: int

    def __call__(self) -> int:
        return self.ms


class Chain:
    """Anvil, the token, the merchant's factory; the gateway's clock moved with the chain's."""

    def __init__(self, anvil: Anvil, clock: Clock) -> None:
        self.anvil, self.clock = anvil, clock
        self.w3 = anvil.web3()
        accounts = [str(a) for a in self.w3.eth.accounts]
        self.owner, self.naive_payer = accounts[0], accounts[1]
        self.token = deploy_token(self.w3, self.owner)
        self.implementation = deploy_deposit_implementation(self.w3, self.owner)
        self.treasury = str(Account.create().address)
        self.factory = deploy_factory(
            self.w3,
            self.owner,
            treasury=self.treasury,
            owner=str(Account.create().address),
            implementation=self.implementation.address,
        )

    def mine(self, blocks: int = 1) -> None:
        self.anvil.rpc("anvil_mine", [hex(blocks)])

    def later(self, seconds: int) -> None:
        self.clock.ms += seconds * 1000
        self.anvil.rpc("evm_increaseTime", [seconds])
        self.mine(CONFIRMATIONS + 1)
        self.sync()

    def sync(self) -> None:
        """The gateway's clock caught up with the chain's (whose blocks also follow the wall clock)."""
        self.clock.ms = max(self.clock.ms, int(self.w3.eth.get_block("latest")["timestamp"]) * 1000)


def _configure(token: str) -> None:
    from usdt_gateway import config

    os.environ.update(
        {
            "ENABLED_NETWORKS": NETWORK,
            "PUBLIC_BASE_URL": "https://pay.example.com",
            "NETWORKS_CONFIG": json.dumps(
                {
                    NETWORK: {
                        "tokenContract": token,
                        "finality": {"mode": "confirmations", "confirmations": CONFIRMATIONS},
                    }
                }
            ),
            "LATE_PAYMENT_GRACE_SECONDS": "60",
            "POWERTOOLS_METRICS_DISABLED": "1",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    config.reset()


class Gateway:
    """The merchant, the scanner and the settlement of network `local`, as the functions run them."""

    def __init__(self, chain: Chain, rpc_url: str) -> None:
        from usdt_gateway.chain.endpoints import Endpoints
        from usdt_gateway.chain.jsonrpc import JsonRpc
        from usdt_gateway.chain.readers import EvmReader
        from usdt_gateway.config import networks
        from usdt_gateway.kms_signer import KmsSigner
        from usdt_gateway.scanner import Scanner
        from usdt_gateway.settlement_jobs import Job, SettlementConfig

        self.chain = chain
        self.network = networks()[NETWORK]
        rpc = JsonRpc(rpc_url, timeout=30)
        self.rpc = rpc
        self.merchant_id = ""
        kms = boto3.client("kms")
        key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        signer = KmsSigner(key_id, client=kms)
        chain.anvil.rpc("anvil_setBalance", [signer.address, hex(10**21)])
        self.job = Job(self.network, [rpc], signer)
        self.settings = SettlementConfig(
            relayer_key_id=key_id,
            min_amount=Decimal("0"),
            max_age_seconds=86_400,
            max_gas_price_gwei=Decimal("1000"),
            max_deposits=1,
            sweeps_per_day=24,
            gas_per_sweep=600_000,
        )
        reader = EvmReader(self.network, Endpoints([(rpc_url, JsonRpc(rpc_url, timeout=30))]))
        self.scanner = Scanner(reader, sleep=lambda s: None)
        self.scan()

    def new_merchant(self) -> None:
        """A merchant of its own (a pool of its own) in contract mode under the factory, reuse on."""
        from usdt_gateway import contract_mode, merchants

        self.merchant_id = merchants.create_merchant("bench shop")["merchantId"]
        contract_mode.configure_contract(
            self.merchant_id,
            NETWORK,
            factory=self.chain.factory.address,
            implementation=self.chain.implementation.address,
            treasury=self.chain.treasury,
            owner=str(self.chain.factory.functions.OWNER().call()),
            rpc=self.rpc,
        )
        contract_mode.configure_reuse(self.merchant_id, NETWORK, reuse=True, quarantine_s=0)

    def scan(self) -> None:
        from usdt_gateway import cursor

        state = cursor.acquire(NETWORK, self.scanner.owner, now=self.chain.clock(), lease_ms=self.scanner.lease_ms)
        assert state is not None, "another scanner holds the lease"
        for _ in range(200):
            state, caught_up = self.scanner.cycle(state)
            if caught_up:
                return
        raise RuntimeError("the scanner did not catch up")

    def run(self) -> dict[str, Any]:
        from usdt_gateway.settlement_jobs import run_network

        return run_network(self.job, self.settings)

    def orders(self, n: int, tag: str) -> list[dict[str, Any]]:
        """n orders of 1 USDT, paid and credited."""
        from usdt_gateway.orders import create_order, get_order
        from usdt_gateway.schemas import CreateOrderRequest

        self.chain.sync()
        # A cycle with few blocks to read first: the scanner's estimate of how far the chain's
        # clock lags (taken only then) is fresh after the bench's jumps in time.
        self.scan()
        views: list[dict[str, Any]] = []
        for i in range(n):
            req = CreateOrderRequest.model_validate(
                {"network": NETWORK, "currency": "USDT", "amount": "1.00", "orderId": f"{tag}-{i}", "expiresIn": 600}
            )
            created, _ = create_order(self.merchant_id, req)
            views.append(created.model_dump(by_alias=True))
        for order in views:
            mint(self.chain.token, order["address"], UNIT, owner=self.chain.owner)
        self.chain.mine(CONFIRMATIONS)
        self.scan()
        paid = {get_order(self.merchant_id, o["orderId"]).status.value for o in views}
        assert paid == {"confirmed"}, f"every order must be credited its payment: {paid}"
        return views

    def sweep(self, n: int) -> Any:
        """Settlement runs until one sweep of all n is marked; its receipt."""
        from usdt_gateway import store

        self.settings = _with_batch(self.settings, n)
        for _ in range(10):
            report = self.run()
            if report["marked"]:
                (settlement_id,) = report["marked"]
                record = store.get(*store.settlement_key(settlement_id))
                assert record is not None and record["settlementStatus"] == "completed", record
                assert len(record["depositIds"]) == n, record
                return self.chain.w3.eth.get_transaction_receipt(record["txHash"])
            self.chain.mine(1)
        raise RuntimeError("no sweep completed")

    def pool(self, addresses: set[str]) -> None:
        """Time passes beyond the orders' windows and grace; the settlement makes them available."""
        from usdt_gateway import store

        self.chain.later(900)
        self.scan()
        for _ in range(6):  # a run looks at 100 addresses at most; the last size's come due too
            self.run()
            states = {a: (store.get(*store.address_key(NETWORK, a)) or {}).get("poolState") for a in addresses}
            if set(states.values()) == {"available"}:
                return
        raise RuntimeError(f"not all in the pool: {states}")


def _with_batch(settings: Any, n: int) -> Any:
    from dataclasses import replace

    return replace(settings, max_deposits=n)


def _deployed(receipt: Any) -> int:
    return sum(1 for log in receipt["logs"] if "0x" + bytes(log["topics"][0]).hex() == DEPLOYED_TOPIC)


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        point_at_moto(f"http://{host}:{port}", TABLE)
        with start_anvil() as anvil:
            from usdt_gateway import clock

            fake = Clock(int(anvil.web3().eth.get_block("latest")["timestamp"]) * 1000)
            setattr(clock, "now_ms", fake)  # the gateway's one wall clock, moved with the chain's  # noqa: B010
            chain = Chain(anvil, fake)
            _configure(chain.token.address)
            gateway = Gateway(chain, anvil.url)
            mint(chain.token, chain.treasury, UNIT, owner=chain.owner)  # its balance slot warm in every row
            rows = []
            for n in sizes:
                gateway.new_merchant()
                first = gateway.orders(n, f"fresh{n}")
                fresh = gateway.sweep(n)
                addresses = {o["address"] for o in first}
                assert _deployed(fresh) == n, "round 1 must deploy every clone"
                gateway.pool(addresses)
                second = gateway.orders(n, f"reused{n}")
                assert {o["address"] for o in second} == addresses, "every order of round 2 must come from the pool"
                reused = gateway.sweep(n)
                assert _deployed(reused) == 0, "a reused clone is never deployed again"
                naive = _naive_gas(chain.w3, chain.token, chain.owner, chain.naive_payer, chain.treasury, n)
                rows.append(
                    {
                        "deposits": n,
                        "fresh_per_deposit": int(fresh["gasUsed"]) // n,
                        "reused_per_deposit": int(reused["gasUsed"]) // n,
                        "naive_per_address": naive // n,
                        "fresh_vs_naive": round(int(fresh["gasUsed"]) / naive, 3),
                        "reused_vs_naive": round(int(reused["gasUsed"]) / naive, 3),
                    }
                )
            return {"chain": "anvil", "token": "TestUSDT", "path": "gateway (create, scan, settle, pool)", "rows": rows}
    finally:
        server.stop()


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated whole numbers: {text!r}") from None
    if not sizes or not all(1 <= n <= 99 for n in sizes):  # one claim transaction holds at most 99
        raise argparse.ArgumentTypeError(f"each size must be 1 to 99: {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--sizes", type=_sizes, default=SIZES, help="deposits per sweep, 1 to 99 each (default 1,10,99)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(sys.stderr):  # the scanner's metrics (EMF lines) stay off the result
        result = run(args.sizes)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("deposits  fresh/deposit  reused (pool)/deposit  naive/address  fresh:naive  reused:naive")
    for r in result["rows"]:
        print(
            f"{r['deposits']:>8}  {r['fresh_per_deposit']:>13,}  {r['reused_per_deposit']:>21,}  "
            f"{r['naive_per_address']:>13,}  {r['fresh_vs_naive']:>11.0%}  {r['reused_vs_naive']:>12.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
