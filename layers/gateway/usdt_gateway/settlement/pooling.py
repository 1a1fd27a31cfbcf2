"""The reuse pool's step of each settlement run of a network (deposit_pool.py has the states):
the addresses on their way whose time has come (POOLWAIT#<network>, due now) are looked at, at
most MAX_PER_RUN a run, each from the table's own item (the index may lag):

    waiting       into quarantine once every condition holds, checked in this order: the
                  scanner's final blocks are past the order's watch window + grace (by its own
                  rule: no transfer can be matched to that order any more), the order is terminal
                  (confirmed, expired, failed or cancelled, nothing seen), reuse is on for
                  the merchant's network under the same factory, no credit is unswept on the
                  address (no SWEEP# candidate, read after the item, and the write is conditional
                  on the item's credit count as read), no refund is pending, and the token
                  balance on chain is zero. Not yet: looked at again later; must not: dropped.
    quarantined   a new pooled watch entry before the last one ends; available once the
                  quarantine is over.

Every write is conditional on the item as read, so two runs, a create or a credit meanwhile
never make an address pooled twice or pooled with money on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from usdt_gateway import clock, cursor, deposit_pool, store
from usdt_gateway.chain.jsonrpc import Call, Rpc
from usdt_gateway.merchant_records import ContractConfig
from usdt_gateway.networks import Network
from usdt_gateway.observability import logger
from usdt_gateway.records import Order
from usdt_gateway.schemas import OrderStatus
from usdt_gateway.settlement import refunds
from usdt_gateway.watchlist import CLOCK_SKEW_MS

MAX_PER_RUN = 100
RETRY_MS = 15 * 60_000  # a condition that cannot hold yet is looked at again this much later
TERMINAL = frozenset({OrderStatus.CONFIRMED, OrderStatus.EXPIRED, OrderStatus.FAILED, OrderStatus.CANCELLED})
_BALANCE_OF = "0x70a08231"  # balanceOf(address)
# An address's balance of the network's USDT on chain, in base units (an EVM endpoint's eth_call,
# or a Tron full node's triggerconstantcontract).
BalanceOf = Callable[[str], int]


@dataclass
class PoolReport:
    quarantined: int = 0
    available: int = 0
    renewed: int = 0
    postponed: int = 0
    dropped: int = 0


class _Step:
    """One run's look at the due addresses, with what it reads once."""

    def __init__(self, network: Network, balance_of: BalanceOf, now: int) -> None:
        self.network = network
        self.balance_of = balance_of
        self.now = now
        state = cursor.read(network.name)
        # The scanner drops a watch entry once this passes its watchUntil (watchlist.refresh).
        self.watched_to = min(now, int((state or {}).get("finalTime") or 0)) - CLOCK_SKEW_MS
        self.configs: dict[str, ContractConfig | None] = {}
        self.report = PoolReport()

    def refund_pending(self, order: Order) -> bool:
        """A refund of the order awaiting its signature (until its deadline) or being sent: the
        owner may still move money from the address, so it stays out of the pool until it ends."""
        if order.refunding_id is None:
            return False
        refund = refunds.read(order.merchant_id, order.order_id, order.refunding_id)
        return refund is not None and not refund.lapsed(self.now)

    def config(self, merchant_id: str) -> ContractConfig | None:
        if merchant_id not in self.configs:
            item = store.get(*store.contract_config_key(merchant_id, self.network.name))
            self.configs[merchant_id] = None if item is None else ContractConfig.from_item(item)
        return self.configs[merchant_id]

    def later(self, item: dict[str, Any], why: str) -> None:
        if deposit_pool.postpone(self.network.name, item, until=self.now + RETRY_MS):
            self.report.postponed += 1
            logger.debug("reuse pool: not yet", extra={"address": deposit_pool.address_of(item), "reason": why})

    def drop(self, item: dict[str, Any], why: str) -> None:
        if deposit_pool.drop(self.network.name, item, why):
            self.report.dropped += 1

    def reusable(self, cfg: ContractConfig | None, item: dict[str, Any]) -> bool:
        return cfg is not None and cfg.reuse and cfg.factory == item.get("factory")

    def waiting(self, item: dict[str, Any]) -> None:
        address = deposit_pool.address_of(item)
        if self.watched_to <= int(item["watchUntil"]):
            return self.later(item, "the scanner still watches for the order")
        found = store.get(item["orderPk"], "ORDER")
        if found is None:
            return self.drop(item, "its order is missing")
        order = Order.from_item(found)
        if order.status not in TERMINAL or order.seen_units:
            return self.later(item, "its order is not terminal")
        cfg = self.config(order.merchant_id)
        if not self.reusable(cfg, item):
            return self.drop(item, "reuse is off, or the merchant's factory changed")
        assert cfg is not None
        prefix = f"{order.merchant_id}#{address}#"
        pk, _ = store.sweep_candidate_key(self.network.name, "", "", "", 0)
        if store.query_between(pk, sk_from=prefix, sk_to=prefix + "~"):
            return self.drop(item, "a credit on it is not swept yet (its sweep puts it back)")
        if self.refund_pending(order):
            return self.later(item, "a refund is pending")
        balance = self.balance_of(address)
        if balance:
            logger.warning(
                "deposit address holds money no credit recorded: not reused",
                extra={"network": self.network.name, "address": address, "units": balance},
            )
            return self.drop(item, "money on it")
        quarantine_ms = cfg.reuse_quarantine_s * 1000
        if deposit_pool.quarantine(
            self.network.name, item, merchant_id=order.merchant_id, now=self.now, quarantine_ms=quarantine_ms
        ):
            self.report.quarantined += 1
        return None

    def quarantined(self, item: dict[str, Any]) -> None:
        if not self.reusable(self.config(str(item["merchantId"])), item):
            return self.drop(item, "reuse is off, or the merchant's factory changed")
        if self.now >= int(item["availableAt"]):
            if deposit_pool.release(self.network.name, item, now=self.now):
                self.report.available += 1
        elif deposit_pool.renew(self.network.name, item, now=self.now):
            self.report.renewed += 1
        return None


def balance_of_call(network: Network, address: str, block: str) -> Call:
    """The eth_call of the network's USDT `balanceOf(address)` at `block` (a tag or a hex number)."""
    data = _BALANCE_OF + address.removeprefix("0x").lower().rjust(64, "0")
    return "eth_call", [{"to": network.token_contract, "data": data}, block]


def evm_balance_of(network: Network, rpc: Rpc) -> BalanceOf:
    """The USDT balance reader of an EVM network through `rpc`."""

    def balance(address: str) -> int:
        answer = rpc.call(*balance_of_call(network, address, "latest"))
        return int(str(answer), 16) if answer and answer != "0x" else 0

    return balance


def run(network: Network, balance_of: BalanceOf) -> PoolReport:
    """The pool's step for `network` (see the module's docstring), reading balances on chain with
    `balance_of` (only for an address about to be quarantined)."""
    now = clock.now_ms()
    due = store.query_index_all(store.pool_waiting_index_pk(network.name), sk_to=f"{now:013d}~")
    if not due:
        return PoolReport()
    step = _Step(network, balance_of, now)
    for entry in due[:MAX_PER_RUN]:
        item = store.get(entry["pk"], entry["sk"])
        if item is None or (item.get("gsi1pk"), item.get("gsi1sk")) != (entry["gsi1pk"], entry["gsi1sk"]):
            continue  # moved since the index was written
        if item.get("poolState") == deposit_pool.WAITING:
            step.waiting(item)
        elif item.get("poolState") == deposit_pool.QUARANTINED:
            step.quarantined(item)
    if any(vars(step.report).values()):
        logger.info("reuse pool", extra={"network": network.name, **vars(step.report)})
    return step.report
