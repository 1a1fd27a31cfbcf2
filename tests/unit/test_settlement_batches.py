"""Which unsettled deposits the next sweep takes (settlement/batches.py `select`): the merchant
whose oldest credit is oldest, once its money reaches the minimum or that credit waited the
maximum age; its oldest deposits first, within the sweep's limits; never a claimed deposit, nor
one whose sweeps failed too often. And what a completed sweep moved for each deposit
(`account`), from its receipt's Swept logs only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from usdt_gateway import deposit_pool
from usdt_gateway.settlement.batches import MAX_DEPOSITS, Batch, BatchPolicy, _fit, account, select
from usdt_gateway.settlement.calldata import MAX_BATCH
from usdt_gateway.settlement.candidates import Candidate
from usdt_gateway.settlement.records import Mined, Settlement, SettlementStatus

NOW = 1_800_000_000_000
MINUTE = 60_000


def candidate(merchant: str, n: int, *, units: int = 10_000_000, age_min: int = 1, **extra: object) -> Candidate:
    fields: dict[str, object] = {
        "network": "eth",
        "merchant_id": merchant,
        "address": f"0x{merchant}{n:038d}"[:42],
        "txid": f"0x{n:064x}",
        "log_index": 0,
        "units": units,
        "order_pk": f"ORDER#{merchant}#o-{n}",
        "factory": f"factory-{merchant}",
        "salt": "0x" + f"{n:064x}",
        "token": "usdt",
        "credited_at": NOW - age_min * MINUTE,
    }
    return Candidate(**(fields | extra))  # type: ignore[arg-type]


POLICY = BatchPolicy(min_units=50_000_000, max_age_ms=60 * MINUTE, max_deposits=3)


def test_nothing_is_taken_below_the_minimum_before_the_maximum_age() -> None:
    # Given one merchant's 40 USDT credited 59 minutes ago (minimum 50, maximum age 60 minutes)
    waiting = [candidate("a", i, age_min=59) for i in range(4)]
    # Then nothing is taken; a minute later all of it (its oldest first, three a sweep)
    assert select(waiting, POLICY, now=NOW) == []
    taken = select(waiting, POLICY, now=NOW + MINUTE)
    assert len(taken) == 3 and all(c.merchant_id == "a" for c in taken)


def test_the_oldest_merchant_that_qualifies_goes_first_and_its_oldest_deposits() -> None:
    # Given merchant b's credits older than a's, both above the minimum
    a = [candidate("a", i, units=30_000_000, age_min=5) for i in range(2)]
    b = [candidate("b", i, units=30_000_000, age_min=10 + i) for i in range(4)]
    # When the next sweep is chosen
    taken = select([*a, *b], POLICY, now=NOW)
    # Then it is b's three oldest deposits
    assert [c.txid for c in taken] == [b[3].txid, b[2].txid, b[1].txid]


def test_a_merchant_below_the_minimum_does_not_hold_back_one_above_it() -> None:
    old_small = [candidate("a", 1, units=1, age_min=30)]
    new_big = [candidate("b", 2, units=60_000_000, age_min=1)]
    assert [c.merchant_id for c in select([*old_small, *new_big], POLICY, now=NOW)] == ["b"]


def test_claimed_deposits_and_those_that_failed_too_often_are_left_out() -> None:
    claimed = candidate("a", 1, units=60_000_000, sweep_id="stl_x")
    failing = candidate("a", 2, units=60_000_000, failures=POLICY.max_failures)
    fresh = candidate("a", 3, units=60_000_000, failures=POLICY.max_failures - 1)
    assert select([claimed, failing, fresh], POLICY, now=NOW) == [fresh]


def test_a_sweep_takes_at_most_one_claim_transaction_of_deposits() -> None:
    # Given more due deposits than one claim transaction holds
    policy = BatchPolicy(min_units=0, max_age_ms=MINUTE, max_deposits=MAX_DEPOSITS)
    many = [candidate("a", i) for i in range(MAX_DEPOSITS + 5)]
    # Then the sweep takes MAX_DEPOSITS of them, which one factory call always takes
    assert len(select(many, policy, now=NOW)) == MAX_DEPOSITS < MAX_BATCH


@pytest.mark.parametrize("deposits", [0, MAX_DEPOSITS + 1])
def test_a_policy_beyond_one_claim_transaction_is_refused(deposits: int) -> None:
    with pytest.raises(ValueError):
        BatchPolicy(min_units=0, max_age_ms=MINUTE, max_deposits=deposits)


def test_an_address_a_refund_holds_money_on_is_not_taken() -> None:
    # Given two addresses of one merchant; a refund holds one deposit of the first
    held = candidate("a", 1, units=60_000_000, age_min=30, refund_id="rfd_1", hold_until=NOW + MINUTE)
    same_address = candidate("a", 2, units=60_000_000, age_min=20, address=held.address)
    elsewhere = candidate("a", 3, units=60_000_000, age_min=10)
    # Then the sweep takes the other address only: it would move the held money too
    assert select([held, same_address, elsewhere], POLICY, now=NOW) == [elsewhere]
    # And a refund signed (held without a deadline) holds it the same
    signed = replace(held, hold_until=None)
    assert select([signed, same_address, elsewhere], POLICY, now=NOW) == [elsewhere]
    # And once an unsigned refund's deadline passed, its hold holds nothing
    lapsed = replace(held, hold_until=NOW - 1)
    assert select([lapsed, same_address, elsewhere], POLICY, now=NOW) == [lapsed, same_address, elsewhere]


def test_an_address_with_spare_money_waits_the_refund_window() -> None:
    # Given an order's payment and, on the same address, an overpayment's excess credited 10
    # minutes ago (spare: refundable), and another address's payment; a refund window of an hour
    policy = replace(POLICY, refund_window_ms=60 * MINUTE)
    paid = candidate("a", 1, units=60_000_000, age_min=30)
    excess = candidate("a", 2, units=5_000_000, age_min=10, address=paid.address, spare=True)
    elsewhere = candidate("a", 3, units=60_000_000, age_min=5)
    # Then the sweep leaves the first address whole (it would move the excess too) and takes the other
    assert select([paid, excess, elsewhere], policy, now=NOW) == [elsewhere]
    # And once the excess is an hour old, the address is swept with the rest
    later = NOW + 50 * MINUTE + 1
    assert select([paid, excess, elsewhere], policy, now=later) == [paid, excess, elsewhere]
    # And without a window, spare money is swept like any other
    assert select([paid, excess, elsewhere], POLICY, now=NOW) == [paid, excess, elsewhere]


def test_a_claim_takes_or_checks_every_deposit_of_its_addresses_within_one_transaction() -> None:
    # Given as many chosen deposits as a claim takes, one address per deposit but the last,
    # whose address has two more deposits the sweep did not choose (they failed too often)
    chosen = [candidate("a", i) for i in range(MAX_DEPOSITS - 1)]
    last = chosen[-1]
    others = [candidate("a", 1000 + i, address=last.address, failures=3) for i in range(2)]
    # Then the claim leaves that address out whole: taking it would need more than one transaction
    taken, checked = _fit(chosen, [*chosen, *others])
    assert taken == chosen[:-1] and checked == []
    # And with room for it, it takes the chosen one and checks the other two (their money moves too)
    taken, checked = _fit(chosen[-3:], [*chosen, *others])
    assert taken == chosen[-3:] and checked == others


# --- what a completed sweep moved, per deposit (batches.account) --------------------------------


def swept_batch(*deposits: tuple[str, int, str | None]) -> Batch:
    """A claimed batch of (address, units, order pk) deposits, oldest first."""
    return Batch(
        settlement_id="stl_1",
        network="eth",
        merchant_id="a",
        factory="factory-a",
        token="usdt",
        decimals=6,
        deposits=tuple(f"a#{address}#0x{i:064x}#0" for i, (address, _, _) in enumerate(deposits)),
        deposit_ids=tuple(f"eth:0x{i:064x}:0" for i in range(len(deposits))),
        orders={},
        salts=(),
        units=sum(units for _, units, _ in deposits),
        created_at=NOW,
        deposit_units=tuple(units for _, units, _ in deposits),
        deposit_orders=tuple(order for _, _, order in deposits),
    )


def completed(swept: dict[str, int] | None) -> Settlement:
    mined = Mined("0x" + "ab" * 32, 9, "0x" + "cd" * 32, 1, 100_000, 1, swept)
    return Settlement("stl_1", "eth", "a", "factory-a", "usdt", (), SettlementStatus.COMPLETED, NOW, NOW, (), mined)


@pytest.fixture
def spare(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The addresses' sweep ledgers (deposit_pool.spare_units), without a table."""
    ledgers: dict[str, int] = {}
    monkeypatch.setattr(deposit_pool, "spare_units", lambda network, address: ledgers.get(address, 0))
    return ledgers


def test_a_sweep_that_moved_all_it_claimed_counts_every_deposit_swept(spare: dict[str, int]) -> None:
    # Given two deposits on A and one on B, and a sweep whose logs show A gave 30 and B 12 (2 more
    # than credited: money no order took, or paid after the claim)
    batch = swept_batch(("A", 10, "o1"), ("A", 20, "o2"), ("B", 10, None))
    marked = account(batch, completed({"A": 30, "B": 12}))
    # Then each is swept whole, the settlement's amount is the logs' sum, B keeps 2 spare
    assert marked.moved == (10, 20, 10) and marked.moved_units == 42
    assert marked.spare == {"A": 0, "B": 2}
    assert marked.covered() == ({"o1": 10, "o2": 20}, {}) and marked.missing_deposit_ids() == []


def test_money_gone_before_the_sweep_is_missing_and_the_oldest_deposits_are_counted_first(
    spare: dict[str, int],
) -> None:
    # Given A's deposits of 10 and 20, but the sweep found only 25 there (5 left another way),
    # and B found empty (swept directly on chain before)
    batch = swept_batch(("A", 10, "o1"), ("A", 20, "o2"), ("B", 7, "o3"))
    marked = account(batch, completed({"A": 25}))
    # Then only what the logs show is counted swept; the rest is missing, reported nowhere as swept
    assert marked.moved == (10, 15, 0) and marked.moved_units == 25
    assert marked.covered() == ({"o1": 10, "o2": 15, "o3": 0}, {"o2": 5, "o3": 7})
    assert marked.missing_deposit_ids() == [batch.deposit_ids[1], batch.deposit_ids[2]]
    assert marked.spare == {"A": 0, "B": 0}


def test_a_deposit_an_earlier_sweep_already_moved_is_counted_from_the_addresss_spare(spare: dict[str, int]) -> None:
    # Given an earlier sweep of A that moved 8 more than it had claimed (a payment credited after)
    spare["A"] = 8
    # When the next sweep claims that payment's 8 and finds A empty
    marked = account(swept_batch(("A", 8, "o1")), completed({}))
    # Then it is swept (the earlier sweep moved it), drawn from the spare; nothing is missing
    assert marked.moved == (8,) and marked.moved_units == 0 and marked.spare == {"A": -8}
    assert marked.missing_deposit_ids() == []


def test_without_evidence_a_sweep_is_marked_as_covering_all_it_claimed(spare: dict[str, int]) -> None:
    # A receipt recorded before its logs were read, or a batch claimed before deposits were kept
    batch = swept_batch(("A", 10, "o1"))
    assert account(batch, completed(None)) == batch
    legacy = replace(batch, deposit_units=None, deposit_orders=None, orders={"o1": 10})
    assert account(legacy, completed({})) == legacy and legacy.covered() == ({"o1": 10}, {})
