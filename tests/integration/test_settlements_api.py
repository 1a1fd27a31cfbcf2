"""GET /v1/settlements and /v1/settlements/{settlementId} against the moto server: a merchant's
settlements, newest first, paged by signed cursors, each with what it covered; another merchant's
are absent; bad input is a 400 that reads and writes nothing it should not."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.integration.apiclient import ApiClient
from tests.integration.conftest import Merchant, new_merchant, table_item_count
from usdt_gateway import store
from usdt_gateway.settlement.batches import Batch, BatchStatus
from usdt_gateway.settlement.records import Mined, Settlement, SettlementStatus
from usdt_gateway.settlement.relayer import new_settlement_id

LIST = "/v1/settlements"
FACTORY = "0x" + "fa" * 20
TOKEN = "0x" + "70" * 20
DECIMALS = 18
GAS_USED, GAS_PRICE = 180_000, 2 * 10**9


def _settlement(merchant_id: str, created_at: int, *, completed: bool = True) -> Settlement:
    settlement_id = new_settlement_id()
    mined = Mined("0x" + secrets.token_hex(32), 120, "0x" + "cd" * 32, 1, GAS_USED, GAS_PRICE) if completed else None
    return Settlement(
        settlement_id=settlement_id,
        network="eth",
        merchant_id=merchant_id,
        factory=FACTORY,
        token=TOKEN,
        salts=("0x" + "01" * 32,),
        status=SettlementStatus.COMPLETED if completed else SettlementStatus.FAILED,
        created_at=created_at,
        closed_at=created_at + 60_000,
        hashes=(mined.tx_hash,) if mined else (),
        mined=mined,
        nonce=7 if mined else None,
        reason=None if completed else "reverted",
    )


def record(merchant_id: str, created_at: int, *, completed: bool = True, units: int = 5 * 10**18) -> Settlement:
    """A closed and marked sweep: the relayer's SETTLEMENT record with what batches.mark adds to it."""
    settlement = _settlement(merchant_id, created_at, completed=completed)
    covered = {"orderIds": ["o-1", "o-2"], "depositIds": ["eth:0xab:0", "eth:0xcd:1"], "units": units}
    store.put(settlement.to_item() | covered | {"decimals": DECIMALS})
    return settlement


def _pages(api: ApiClient, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = [("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
        reply = api.request("GET", LIST, query=query)
        assert reply.status == 200, reply.body
        pages.append(reply.body["settlements"])
        cursor = reply.body["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "the listing does not end"


def test_the_listing_is_the_merchants_settlements_newest_first_in_pages(api: ApiClient, merchant: Merchant) -> None:
    # Given five settlements of this merchant, recorded out of order, and one of another merchant
    times = [1_700_000_000_000 + i * 1000 for i in (3, 0, 4, 1, 2)]
    made = {record(merchant.merchant_id, t).settlement_id: t for t in times}
    record(new_merchant().merchant_id, 1_700_000_009_000)
    # When the listing is read two at a time
    pages = _pages(api, 2)
    # Then it is three pages (2, 2, 1) holding exactly this merchant's, newest first
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [s for page in pages for s in page]
    assert [s["settlementId"] for s in listed] == sorted(made, key=lambda i: made[i], reverse=True)
    assert [s["createdAt"] for s in listed] == sorted(times, reverse=True)


def test_a_listed_settlement_says_what_it_covered_and_cost(api: ApiClient, merchant: Merchant) -> None:
    # Given a completed sweep of 5 USDT and a failed one
    done = record(merchant.merchant_id, 1_700_000_000_000)
    failed = record(merchant.merchant_id, 1_700_000_001_000, completed=False, units=1_500_000_000_000_000_000)
    # When the listing is read
    reply = api.request("GET", LIST)
    # Then each says its outcome, amount, orders, deposits, transaction and gas
    assert reply.status == 200, reply.body
    newest, oldest = reply.body["settlements"]
    assert reply.body["nextCursor"] is None
    assert oldest == {
        "settlementId": done.settlement_id,
        "network": "eth",
        "status": "completed",
        "factory": FACTORY,
        "tokenContract": TOKEN,
        "amount": "5.00",
        "orders": ["o-1", "o-2"],
        "deposits": ["eth:0xab:0", "eth:0xcd:1"],
        "txHash": done.tx_hash,
        "gasPaid": str(GAS_USED * GAS_PRICE),
        "reason": None,
        "createdAt": done.created_at,
        "closedAt": done.closed_at,
    }
    assert (newest["settlementId"], newest["status"], newest["amount"]) == (failed.settlement_id, "failed", "1.50")
    assert (newest["txHash"], newest["gasPaid"], newest["reason"]) == (None, "0", "reverted")


def test_a_settlement_not_marked_yet_reads_what_it_covers_from_its_batch(api: ApiClient, merchant: Merchant) -> None:
    # Given a sweep the relayer closed whose coverage was not yet copied onto its record
    settlement = _settlement(merchant.merchant_id, 1_700_000_000_000)
    store.put(settlement.to_item())
    order_pk = store.order_key(merchant.merchant_id, "o-9")[0]
    batch = Batch(
        settlement_id=settlement.settlement_id,
        network="eth",
        merchant_id=merchant.merchant_id,
        factory=FACTORY,
        token=TOKEN,
        decimals=6,
        deposits=("cand-1",),
        deposit_ids=("eth:0xef:3",),
        orders={order_pk: 2_000_000},
        salts=settlement.salts,
        units=2_000_000,
        created_at=settlement.created_at,
        status=BatchStatus.OPEN,
    )
    store.put(batch.to_item())
    # When it is read
    reply = api.request("GET", f"{LIST}/{settlement.settlement_id}")
    # Then its coverage is the batch's
    assert reply.status == 200, reply.body
    assert (reply.body["amount"], reply.body["orders"], reply.body["deposits"]) == ("2.00", ["o-9"], ["eth:0xef:3"])


def test_another_merchant_lists_none_of_them(handler: object, merchant: Merchant) -> None:
    # Given a settlement of this merchant
    record(merchant.merchant_id, 1_700_000_000_000)
    # When another merchant lists its own
    other = new_merchant()
    reply = ApiClient(handler, other.api_key, other.secret).request("GET", LIST)
    # Then it has none
    assert reply.status == 200, reply.body
    assert reply.body == {"settlements": [], "nextCursor": None}


def test_a_settlement_is_found_by_its_id(api: ApiClient, merchant: Merchant) -> None:
    # Given a settlement
    settlement = record(merchant.merchant_id, 1_700_000_000_000)
    # When it is asked for
    reply = api.request("GET", f"{LIST}/{settlement.settlement_id}")
    # Then it is the same view the listing holds
    assert reply.status == 200, reply.body
    assert reply.body == api.request("GET", LIST).body["settlements"][0]
    assert reply.body["settlementId"] == settlement.settlement_id


def test_an_unknown_or_foreign_settlement_is_not_found_alike(
    handler: object, api: ApiClient, merchant: Merchant
) -> None:
    # Given a settlement of another merchant, and an id that exists nowhere
    other = new_merchant()
    foreign = record(other.merchant_id, 1_700_000_000_000)
    # When this merchant asks for either
    replies = [api.request("GET", f"{LIST}/{i}") for i in (foreign.settlement_id, new_settlement_id())]
    # Then both are the same 404, which says nothing of the other merchant
    for reply, asked in zip(replies, (foreign.settlement_id, None), strict=True):
        assert (reply.status, reply.body["code"]) == (404, "SETTLEMENT_NOT_FOUND"), reply.body
        assert other.merchant_id not in reply.body["message"]
        if asked:
            assert reply.body["message"] == f"no settlement with settlementId '{asked}'"
    # And its own merchant still gets it
    assert (
        ApiClient(handler, other.api_key, other.secret).request("GET", f"{LIST}/{foreign.settlement_id}").status == 200
    )


@pytest.mark.parametrize(
    ("path", "query", "code"),
    [
        (LIST, [("limit", "0")], "INVALID_PARAMETER"),
        (LIST, [("limit", "101")], "INVALID_PARAMETER"),
        (LIST, [("limit", "ten")], "INVALID_PARAMETER"),
        (LIST, [("cursor", "not-a-cursor")], "INVALID_CURSOR"),
        (LIST, [("cursor", "e30." + "A" * 22)], "INVALID_CURSOR"),  # the right shape, not signed by the gateway
        (f"{LIST}/stl_{'0' * 2100}", [], "INVALID_SETTLEMENT_ID"),
        (f"{LIST}/ORDER-1001", [], "INVALID_SETTLEMENT_ID"),
        (f"{LIST}/stl_0123456789ABCDEF01234567", [], "INVALID_SETTLEMENT_ID"),
    ],
)
def test_bad_input_is_a_400_with_a_stable_code_and_writes_nothing(
    api: ApiClient, merchant: Merchant, path: str, query: list[tuple[str, str]], code: str
) -> None:
    # Given a settlement, so a listing would have something to show
    record(merchant.merchant_id, 1_700_000_000_000)
    count = table_item_count()
    # When a request with a bad limit, cursor or id is made
    reply = api.request("GET", path, query=query)
    # Then it is a 400 with its code, and nothing was written
    assert (reply.status, reply.body["code"]) == (400, code), reply.body
    assert table_item_count() == count


def test_a_cursor_is_refused_by_another_merchant_and_another_listing(
    handler: object, api: ApiClient, merchant: Merchant
) -> None:
    # Given a cursor of this merchant's settlement listing
    for t in (1, 2):
        record(merchant.merchant_id, 1_700_000_000_000 + t)
    cursor = api.request("GET", LIST, query=[("limit", "1")]).body["nextCursor"]
    assert cursor
    other = new_merchant()
    record(other.merchant_id, 1_700_000_000_000)
    # When another merchant passes it to its own listing, and this merchant to its deposit listing
    replies = [
        ApiClient(handler, other.api_key, other.secret).request("GET", LIST, query=[("cursor", cursor)]),
        api.request("GET", "/v1/deposits", query=[("cursor", cursor)]),
    ]
    # Then both refuse it
    for reply in replies:
        assert (reply.status, reply.body["code"]) == (400, "INVALID_CURSOR"), reply.body
