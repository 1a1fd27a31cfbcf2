"""Which unsettled deposits the next sweep takes (settlement/batches.py `select`): the merchant
whose oldest credit is oldest, once its money reaches the minimum or that credit waited the
maximum age; its oldest deposits first, within the sweep's limits; never a claimed deposit, nor
one whose sweeps failed too often."""

from __future__ import annotations

from dataclasses import replace

import pytest

from usdt_gateway.settlement.batches import MAX_DEPOSITS, BatchPolicy, _fit, select
from usdt_gateway.settlement.calldata import MAX_BATCH
from usdt_gateway.settlement.candidates import Candidate

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
