"""The token balance cross-check made before a sweep is built: each deposit address's balance of
the network's USDT at a final block, read from a second endpoint, must cover the credited money
the sweep is to settle from it, or the address is left out of the sweep.

Why: a credit is only as true as the endpoint that reported it, and a sweep takes whatever the
address holds. Money credited from a fabricated answer is not on chain; money that left by
another path (someone else's sweep, a refund sent directly) is not there any more. Swept, such an
address moves nothing for those credits (its Swept logs say so, and the settlement records the
money missing); checked first, it is held instead, in plain view, and the sweep goes on with the
other addresses.

Where from: EVM, the first of the network's other endpoints (RPC_ENDPOINTS order) that answers
with the network's chain id; Tron, the first other full node that answers. With one endpoint
configured, that endpoint: the same trust as the credit itself. With two or more, none of the
others answering means no answer (the chosen endpoint is not asked instead: a second source that
can be switched off is no second source).

At which block: EVM, the network's final block by its policy (head - confirmations + 1, or the
`finalized` block), every balance an eth_call pinned to its number, in one JSON-RPC batch with the
block's header (balance_of_call, shared with the reuse pool). Tron, the solidified state:
`walletsolidity/getnowblock`, then `walletsolidity/triggerconstantcontract` balanceOf per
address (java-tron answers constant calls there against the solidified state; a call cannot be
pinned to a block number).

Per address, `expected` being the credited units to settle from it (waived credits aside):

    covered   balance >= expected, counting the address's spare (money an earlier sweep of it
              moved before the credit was recorded, as the Swept-log accounting does): swept
    short     less, at a final block whose time is past the address's last credit (+ the clock
              allowance): that block follows every credited payment, so the money is not there.
              Its candidates are held (`balanceShort`: the balance seen, the units expected, the
              block and endpoint); an ERROR log, and the SettlementBalanceShort figure counts it
    unknown   not answered, or less at a final block older than the last credit (the endpoint
              may lag): left out of this run, nothing written; the next run asks again

A held address is read again at every run, whether or not a sweep is built: once its balance
covers its credits (a lagging endpoint caught up, the money came back), the hold is lifted and the
next run sweeps it. An operator who knows the money will not come (it left by another path, or
never existed) waives the check (admin release-deposits --balance-short): the next sweep takes the
address, and its Swept logs decide what is counted swept and what missing.

Cost: nothing when no sweep is to be built and nothing is held. Otherwise, EVM: two requests, the
first (chain id, head or finalized block) and a batch of one eth_call per address (with the final
block's header); Tron: one solidified head and one constant call per address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from usdt_gateway import deposit_pool
from usdt_gateway.chain import tron_tx
from usdt_gateway.chain.jsonrpc import Rpc, RpcError, RpcUnavailable, call_many
from usdt_gateway.chain.tron import Provider
from usdt_gateway.networks import Network
from usdt_gateway.observability import logger
from usdt_gateway.settlement import candidates
from usdt_gateway.settlement.candidates import BalanceShort, Candidate
from usdt_gateway.settlement.pooling import balance_of_call
from usdt_gateway.watchlist import CLOCK_SKEW_MS


@dataclass(frozen=True)
class FinalBalances:
    """Balances of deposit addresses at one final block, as one endpoint answered them."""

    endpoint: str  # its name, never its URL
    block: int
    block_time_ms: int
    units: Mapping[str, int]  # address -> balance; an address left out was not answered


class Source(Protocol):
    """Where a run reads final balances from (EvmSource, TronSource, or a test's)."""

    def read(self, addresses: Sequence[str]) -> FinalBalances | None: ...


class WrongChain(Exception):
    """The endpoint serves another chain."""


def _word(answer: Any) -> int | None:
    """A balanceOf answer: one 32-byte word; anything else (`0x` where no contract is) is none."""
    if not isinstance(answer, str) or len(answer) != 66 or not answer.startswith("0x"):
        return None
    try:
        return int(answer, 16)
    except ValueError:
        return None


class EvmSource:
    """Final balances of an EVM network: see the module's docstring."""

    def __init__(self, network: Network, endpoints: Sequence[Rpc], chosen: Rpc) -> None:
        others = [rpc for rpc in endpoints if rpc is not chosen]
        self.network = network
        self.second = bool(others)
        self.sources = others or [chosen]

    def read(self, addresses: Sequence[str]) -> FinalBalances | None:
        for rpc in self.sources:
            try:
                return self._read(rpc, addresses)
            except (RpcUnavailable, RpcError, WrongChain, KeyError, TypeError, ValueError) as exc:
                _passed_over(self.network, rpc.label, exc)
        return None

    def _read(self, rpc: Rpc, addresses: Sequence[str]) -> FinalBalances:
        by_depth = self.network.finality.mode == "confirmations"
        first = [("eth_blockNumber", []) if by_depth else ("eth_getBlockByNumber", ["finalized", False])]
        if self.second:  # the run's own endpoint was checked when it was chosen
            first.append(("eth_chainId", []))
        answers = call_many(rpc, first)
        if self.second and int(answers[1], 16) != self.network.chain_id:
            raise WrongChain(f"chain id {int(answers[1], 16)}, not {self.network.chain_id}")
        header: dict[str, Any] | None = None
        if by_depth:
            number = int(answers[0], 16) - max(1, self.network.finality.confirmations) + 1
        else:
            header = answers[0]
            number = int(header["number"], 16)
        block = hex(number)
        calls = [] if header else [("eth_getBlockByNumber", [block, False])]
        calls += [balance_of_call(self.network, address, block) for address in addresses]
        answers = call_many(rpc, calls)
        if header is None:
            header, answers = answers[0], answers[1:]
        if not header or int(header["number"], 16) != number:
            raise ValueError(f"block {number} is not answered")
        units = {a: units for a, answer in zip(addresses, answers, strict=True) if (units := _word(answer)) is not None}
        return FinalBalances(rpc.label, number, int(header["timestamp"], 16) * 1000, units)


class TronSource:
    """Final (solidified) balances of a Tron network: see the module's docstring."""

    def __init__(self, network: Network, nodes: Sequence[Provider], chosen: Provider) -> None:
        others = [node for node in nodes if node is not chosen]
        self.network = network
        self.sources = others or [chosen]

    def read(self, addresses: Sequence[str]) -> FinalBalances | None:
        for node in self.sources:
            label = str(getattr(node, "label", "") or "node")
            try:
                return self._read(node, label, addresses)
            except (RpcUnavailable, KeyError, TypeError, ValueError) as exc:
                _passed_over(self.network, label, exc)
        return None

    def _read(self, node: Provider, label: str, addresses: Sequence[str]) -> FinalBalances:
        # The head first: the state the balances are read from is at least as new as it.
        raw = node.make_request("walletsolidity/getnowblock", {})["block_header"]["raw_data"]
        number, timestamp = int(raw.get("number", 0)), int(raw.get("timestamp", 0))
        if number <= 0:
            raise ValueError("no solidified block")
        units: dict[str, int] = {}
        for address in addresses:  # one call each: java-tron has no batch
            try:
                units[address] = tron_tx.token_balance(node, self.network.token_contract, address, solidified=True)
            except (tron_tx.TronTxError, RpcUnavailable) as exc:
                logger.warning(
                    "balance cross-check: balance not answered",
                    extra={"network": self.network.name, "endpoint": label, "address": address, "reason": str(exc)},
                )
                if isinstance(exc, RpcUnavailable):
                    # A rate limit or an outage: those answered so far are judged, the rest wait
                    break
        return FinalBalances(label, number, timestamp, units)


def _passed_over(network: Network, label: str, exc: Exception) -> None:
    logger.warning(
        "balance cross-check: endpoint passed over",
        extra={"network": network.name, "endpoint": label, "reason": f"{type(exc).__name__}: {exc}"},
    )


class State(StrEnum):
    COVERED = "covered"
    SHORT = "short"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verdict:
    state: State
    expected: int
    balance: int | None = None
    spare: int = 0
    why: str = ""


def expected_units(group: Iterable[Candidate]) -> int:
    """The credited units a sweep of these candidates settles and the balance must cover."""
    return sum(c.units for c in group if c.waived_at is None)


def judge(network: Network, address: str, group: Sequence[Candidate], answer: FinalBalances | None) -> Verdict:
    """What the final balance says of the address's credits `group` (see the module's docstring)."""
    expected = expected_units(group)
    if expected == 0:
        return Verdict(State.COVERED, 0)  # nothing credited to check (every credit waived)
    balance = None if answer is None else answer.units.get(address)
    if answer is None or balance is None:
        return Verdict(State.UNKNOWN, expected, why="not answered")
    if balance >= expected:
        return Verdict(State.COVERED, expected, balance)
    spare = deposit_pool.spare_units(network.name, address)
    if balance + spare >= expected:
        return Verdict(State.COVERED, expected, balance, spare)
    last_credit = max(c.credited_at for c in group if c.waived_at is None)
    if answer.block_time_ms < last_credit + CLOCK_SKEW_MS:
        return Verdict(State.UNKNOWN, expected, balance, spare, why="its final block is older than the last credit")
    return Verdict(State.SHORT, expected, balance, spare)


@dataclass
class Screening:
    """What a run's check found: addresses held short after it, and those left out unanswered."""

    held: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)


def held_addresses(unsettled: Iterable[Candidate]) -> set[str]:
    return {c.address for c in unsettled if c.sweep_id is None and c.short is not None}


def screen(
    network: Network,
    chosen: Sequence[Candidate],
    unsettled: Sequence[Candidate],
    source: Source,
    *,
    max_failures: int,
    now: int,
) -> tuple[list[Candidate], Screening]:
    """The chosen candidates whose addresses' final balances cover them (the others held short, or
    left for the next run), with every held address of the network read again. One read for all."""
    settling: dict[str, list[Candidate]] = {}
    for c in chosen:
        settling.setdefault(c.address, []).append(c)
    held = held_addresses(unsettled)
    recheck = {
        address: [c for c in unsettled if c.address == address and c.sweep_id is None and c.failures < max_failures]
        for address in held - set(settling)
    }
    report = Screening(held=set(held))
    groups = {**recheck, **settling}
    to_read = [address for address, group in groups.items() if expected_units(group) > 0]
    answer = source.read(to_read) if to_read else None
    covered: set[str] = set()
    for address, group in groups.items():
        verdict = judge(network, address, group, answer)
        if verdict.state is State.COVERED:
            covered.add(address)
            if address in recheck:
                _lift(network, address, group, verdict)
                report.held.discard(address)
        elif verdict.state is State.SHORT:
            assert answer is not None and verdict.balance is not None
            _hold(network, address, group, verdict, answer, now)
            report.held.add(address)
        else:
            report.unknown.add(address)
            logger.warning(
                "balance cross-check: address left for the next run",
                extra={"network": network.name, "address": address, "reason": verdict.why},
            )
    return [c for c in chosen if c.address in covered], report


def _hold(
    network: Network, address: str, group: Sequence[Candidate], verdict: Verdict, answer: FinalBalances, now: int
) -> None:
    assert verdict.balance is not None
    since = min((c.short.since for c in group if c.short is not None), default=now)
    short = BalanceShort(verdict.balance, verdict.expected, answer.block, answer.endpoint, since)
    seen = (short.balance, short.expected)
    changed = [c for c in group if c.short is None or (c.short.balance, c.short.expected) != seen]
    for c in changed:
        candidates.hold_short(c, short)
    if changed:
        logger.error(
            "deposit address holds less than its credits at a final block: held from sweeps",
            extra={
                "network": network.name,
                "merchant_id": group[0].merchant_id,
                "address": address,
                "balance": verdict.balance,
                "spare": verdict.spare,
                "expected": verdict.expected,
                "block": answer.block,
                "endpoint": answer.endpoint,
                "depositIds": [c.deposit_id for c in group],
            },
        )


def _lift(network: Network, address: str, group: Sequence[Candidate], verdict: Verdict) -> None:
    for c in group:
        if c.short is not None:
            candidates.lift_short(c)
    logger.info(
        "deposit address's balance covers its credits now: hold lifted",
        extra={"network": network.name, "address": address, "balance": verdict.balance, "expected": verdict.expected},
    )
