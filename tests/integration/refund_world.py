"""A contract-mode merchant on anvil whose factory owner's key the test holds: orders paid through
the scanner, refunds made and signed through the API, and the settlement function's runs that
send them (tests/integration/test_refunds*.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

from devstack.evm import start_anvil
from devstack.settlement_contracts import deploy_deposit_implementation, deploy_factory
from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient, Reply
from tests.integration.chains import create, drive, evm_scanner, new_chain, status
from tests.integration.conftest import Merchant
from tests.integration.test_contract_mode import ContractChain
from tests.integration.test_settlement_function import relayer_job
from usdt_gateway import store
from usdt_gateway.chain.jsonrpc import Rpc
from usdt_gateway.scanner import Scanner
from usdt_gateway.settlement.relayer import SweepRelayer
from usdt_gateway.settlement_jobs import Job, SettlementConfig, run_network

LEASE_MS = 120_000
HOUR_MS = 3_600_000


@dataclass
class World:
    contracts: ContractChain
    owner: LocalAccount  # the factory's OWNER: only its signature authorises a refund
    merchant: Merchant
    api: ApiClient
    scanner: Scanner
    job: Job
    config: SettlementConfig
    clock: FakeClock

    @property
    def network(self) -> str:
        return self.contracts.chain.network

    @property
    def w3(self) -> Web3:
        return self.contracts.chain.w3

    def order(self, amount: str = "25.00", **extra: object) -> dict[str, Any]:
        return create(self.api, self.contracts.chain, amount, **extra)

    def paid_order(self, paid: str, amount: str = "25.00", **extra: object) -> dict[str, Any]:
        """An order of `amount` paid `paid`, credited final."""
        order = self.order(amount, **extra)
        self.pay(order, paid)
        return order

    def pay(self, order: dict[str, Any], amount: str) -> None:
        self.contracts.chain.pay(order["address"], amount)
        self.contracts.chain.mine(1)
        drive(self.scanner)

    def view(self, order: dict[str, Any]) -> dict[str, Any]:
        return status(self.api, order)

    def run(self, hook: Callable[[str], None] | None = None) -> dict[str, Any]:
        """One invocation's settlement run of the network, with a relayer of its own."""

        def relayer(rpc: Rpc) -> SweepRelayer:
            return SweepRelayer(
                self.job.network,
                rpc,
                self.job.signer,
                fees=self.config.fees(),
                lease_ms=LEASE_MS,
                hook=hook or (lambda step: None),
            )

        return run_network(self.job, self.config, relayer)

    def run_until(self, done: Callable[[dict[str, Any]], bool], *, runs: int = 8) -> list[dict[str, Any]]:
        """Run, mining a block between runs, until `done(report)`; the reports."""
        reports = []
        for _ in range(runs):
            reports.append(self.run())
            if done(reports[-1]):
                return reports
            self.contracts.chain.mine(1)
        raise AssertionError(f"not done after {runs} runs: {reports}")

    def settle_refund(self) -> list[dict[str, Any]]:
        return self.run_until(lambda r: bool(r["refunds_closed"]))

    def settle_sweep(self) -> list[dict[str, Any]]:
        return self.run_until(lambda r: bool(r["marked"]))

    def balance(self, holder: str) -> int:
        return int(self.contracts.chain.token.functions.balanceOf(Web3.to_checksum_address(holder)).call())

    # -- the API --------------------------------------------------------------------------------

    def refunds_path(self, order: dict[str, Any]) -> str:
        return f"/v1/payment/order/{order['orderId']}/refunds"

    def request_refund(self, order: dict[str, Any], to: str, amount: str | None = None) -> Reply:
        body: dict[str, Any] = {"to": to} | ({"amount": amount} if amount is not None else {})
        return self.api.request("POST", self.refunds_path(order), body)

    def new_refund(self, order: dict[str, Any], to: str, amount: str | None = None) -> dict[str, Any]:
        reply = self.request_refund(order, to, amount)
        assert reply.status == 201, reply.body
        refund: dict[str, Any] = reply.body
        return refund

    def submit(self, order: dict[str, Any], refund: dict[str, Any], signature: bytes | str) -> Reply:
        text = signature if isinstance(signature, str) else "0x" + signature.hex()
        path = f"{self.refunds_path(order)}/{refund['refundId']}/signature"
        return self.api.request("POST", path, {"signature": text})

    def sign(self, typed: dict[str, Any], key: LocalAccount | None = None) -> bytes:
        """The signature a wallet makes of the typed data (eth_signTypedData_v4)."""
        return bytes((key or self.owner).sign_message(encode_typed_data(full_message=typed)).signature)

    def signed_refund(self, order: dict[str, Any], to: str, amount: str | None = None) -> dict[str, Any]:
        """A refund made and signed by the owner: submitted."""
        refund = self.new_refund(order, to, amount)
        reply = self.submit(order, refund, self.sign(refund["typedData"]))
        assert reply.status == 202, reply.body
        submitted: dict[str, Any] = reply.body
        return submitted

    def refund(self, order: dict[str, Any], refund_id: str) -> dict[str, Any]:
        reply = self.api.request("GET", f"{self.refunds_path(order)}/{refund_id}")
        assert reply.status == 200, reply.body
        found: dict[str, Any] = reply.body
        return found

    def order_item(self, order: dict[str, Any]) -> dict[str, Any]:
        item = store.get(*store.order_key(self.merchant.merchant_id, order["orderId"]))
        assert item is not None
        return item

    def refund_events(self) -> list[dict[str, Any]]:
        items, _ = store.query_index(
            store.events_index_pk(self.merchant.merchant_id), sk_from="0", sk_to="~", limit=100, newest_first=False
        )
        return [i for i in items if str(i["type"]).startswith("refund.")]


def new_owned_contract_chain(chain: Any, owner: str) -> ContractChain:
    implementation = deploy_deposit_implementation(chain.w3, chain.owner)
    treasury = Account.create().address
    factory = deploy_factory(
        chain.w3, chain.owner, treasury=treasury, owner=owner, implementation=implementation.address
    )
    return ContractChain(chain, implementation, factory, treasury, owner)


@contextlib.contextmanager
def open_world(
    settings_env: pytest.MonkeyPatch,
    api: ApiClient,
    merchant: Merchant,
    moto_server: str,
    fake_clock: FakeClock,
    *,
    owner_address: str | None = None,
) -> Iterator[World]:
    """The merchant's network switched to a factory of its own on a fresh anvil, a relayer key in
    the local KMS, a low minimum so that any money qualifies for a sweep. The factory's owner is
    the world's `owner` key, or `owner_address` (a key the test holds elsewhere)."""
    with start_anvil() as anvil:
        owner: LocalAccount = Account.create()
        contracts = new_owned_contract_chain(new_chain(anvil, settings_env), owner_address or owner.address)
        contracts.switch(merchant.merchant_id)
        job, config = relayer_job(anvil, contracts.chain.network, moto_server, min_amount=Decimal("1"))
        scanner = evm_scanner(contracts.chain.network, [anvil.url])
        drive(scanner)
        yield World(contracts, owner, merchant, api, scanner, job, config, fake_clock)
