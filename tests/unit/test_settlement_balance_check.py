"""The balance cross-check's verdict per deposit address (settlement/balance_check.py `judge`):
covered, short, or unknown (not answered, or a final block older than the last credit); the
address's spare counted as the Swept-log accounting counts it; waived credits not expected. And
`select` leaves an address the check holds out of the next sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tests.unit.test_settlement_batches import MINUTE, NOW, POLICY, candidate
from usdt_gateway import deposit_pool
from usdt_gateway.chain.jsonrpc import Call
from usdt_gateway.networks import BUILTIN, Network
from usdt_gateway.settlement.balance_check import EvmSource, FinalBalances, State, judge
from usdt_gateway.settlement.batches import select
from usdt_gateway.settlement.candidates import BalanceShort

ETH = Network.model_validate({"name": "eth", **BUILTIN["eth"]})
ADDRESS = candidate("a", 1).address


def final(units: int | None, *, after_credit_ms: int = 5 * MINUTE) -> FinalBalances:
    """Balances at a final block produced `after_credit_ms` after the candidates' credit (a
    minute before NOW)."""
    return FinalBalances("second", 100, NOW - MINUTE + after_credit_ms, {} if units is None else {ADDRESS: units})


@pytest.fixture(autouse=True)
def no_spare(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    spare: dict[str, int] = {}
    monkeypatch.setattr(deposit_pool, "spare_units", lambda network, address: spare.get(address, 0))
    return spare


def test_a_balance_that_covers_the_credits_is_covered() -> None:
    group = [candidate("a", 1, units=25_000_000)]
    assert judge(ETH, ADDRESS, group, final(25_000_000)).state is State.COVERED
    assert judge(ETH, ADDRESS, group, final(30_000_000)).state is State.COVERED


def test_less_at_a_final_block_after_the_last_credit_is_short() -> None:
    verdict = judge(ETH, ADDRESS, [candidate("a", 1, units=25_000_000)], final(10_000_000))
    assert (verdict.state, verdict.balance, verdict.expected) == (State.SHORT, 10_000_000, 25_000_000)


def test_less_at_a_final_block_older_than_the_last_credit_is_unknown() -> None:
    # The endpoint may not have the payment's block yet: within the clock allowance (60 s) too
    for after in (-3 * MINUTE, 0, MINUTE - 1):
        verdict = judge(ETH, ADDRESS, [candidate("a", 1)], final(0, after_credit_ms=after))
        assert verdict.state is State.UNKNOWN, after
    assert judge(ETH, ADDRESS, [candidate("a", 1)], final(0, after_credit_ms=MINUTE)).state is State.SHORT


def test_an_unanswered_balance_is_unknown_never_zero() -> None:
    assert judge(ETH, ADDRESS, [candidate("a", 1)], final(None)).state is State.UNKNOWN
    assert judge(ETH, ADDRESS, [candidate("a", 1)], None).state is State.UNKNOWN


def test_the_addresss_spare_covers_money_an_earlier_sweep_moved_before_its_credit(no_spare: dict[str, int]) -> None:
    no_spare[ADDRESS] = 15_000_000
    group = [candidate("a", 1, units=15_000_000)]
    assert judge(ETH, ADDRESS, group, final(0)).state is State.COVERED
    assert judge(ETH, ADDRESS, [candidate("a", 1, units=16_000_000)], final(0)).state is State.SHORT


def test_waived_credits_are_not_expected() -> None:
    waived = candidate("a", 1, units=40_000_000, waived_at=NOW)
    assert judge(ETH, ADDRESS, [waived], None).state is State.COVERED
    genuine = candidate("a", 2, units=25_000_000, address=ADDRESS)
    verdict = judge(ETH, ADDRESS, [waived, genuine], final(25_000_000))
    assert (verdict.state, verdict.expected) == (State.COVERED, 25_000_000)


def test_an_address_the_check_holds_is_not_selected() -> None:
    short = BalanceShort(balance=0, expected=60_000_000, block=1, endpoint="second", since=NOW)
    held = candidate("a", 1, units=60_000_000, age_min=30, short=short)
    newer_on_it = candidate("a", 2, units=60_000_000, age_min=20, address=held.address)
    other = candidate("a", 3, units=60_000_000, age_min=10)
    assert select([held, newer_on_it, other], POLICY, now=NOW) == [other]


class Answers:
    """An endpoint that answers from a table, recording the calls."""

    def __init__(self, label: str, chain_id: int, head: int = 1_000) -> None:
        self.label = label
        self.chain_id = chain_id
        self.head = head
        self.calls: list[Call] = []

    def call(self, method: str, params: list[Any]) -> Any:
        self.calls.append((method, params))
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getBlockByNumber":
            number = hex(self.head - 3) if params[0] == "finalized" else params[0]
            return {"number": number, "timestamp": hex(NOW // 1000)}
        return "0x" + f"{7:064x}"

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        return [self.call(method, params) for method, params in calls]


@pytest.mark.parametrize("finality", ["finalized", "confirmations"])
def test_the_evm_source_reads_another_endpoint_than_the_runs_at_its_final_block(finality: str) -> None:
    policy = {"mode": finality, "confirmations": 15 if finality == "confirmations" else 0}
    bsc = Network.model_validate({"name": "bsc", **BUILTIN["bsc"], "finality": policy})
    chosen, wrong_chain, second = Answers("chosen", bsc.chain_id), Answers("wrong", 1), Answers("second", bsc.chain_id)
    answer = EvmSource(bsc, [chosen, wrong_chain, second], chosen).read([ADDRESS])
    # The run's endpoint is not asked; one of another chain is passed over
    assert answer is not None and answer.endpoint == "second" and chosen.calls == []
    assert not any(method == "eth_call" for method, _ in wrong_chain.calls)
    final_block = 1_000 - 15 + 1 if finality == "confirmations" else 1_000 - 3
    assert (answer.block, answer.units) == (final_block, {ADDRESS: 7})
    assert {params[1] for method, params in second.calls if method == "eth_call"} == {hex(final_block)}
    # With no other endpoint answering, there is no answer (never the run's own endpoint)
    assert EvmSource(bsc, [chosen, wrong_chain], chosen).read([ADDRESS]) is None
    # With one endpoint configured, that one
    alone = EvmSource(bsc, [chosen], chosen).read([ADDRESS])
    assert alone is not None and alone.endpoint == "chosen"
