"""Where a deposit is matched to an order, recorded, credited, dropped after a reorg, listed and
attached by the merchant.

A deposit is one Transfer log, recorded once under DEP#<network>#<txid>#<logIndex>, so re-scans,
overlapping ranges and retries never count it twice. Its `depositStatus`:
    seen      found in a block that is not final yet; its order is `confirming`
    credited  found in a final block and counted in its order
    unmatched found in a final block, but no open order takes it (the merchant can attach it)
    dropped   a seen deposit whose log a reorg removed; it may be recorded again if it returns
The deposit write and its order's write are one transaction (transitions.apply).
"""

from __future__ import annotations

from typing import Any

from usdt_gateway import events, outbox, store, transitions
from usdt_gateway.chain.transfers import Transfer
from usdt_gateway.config import networks
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.lifecycle import ACCEPTING
from usdt_gateway.money import format_units
from usdt_gateway.observability import log_keys, logger, order_keys
from usdt_gateway.schemas import DepositListView, DepositRecordView, OrderStatus
from usdt_gateway.transitions import Applied, now_ms
from usdt_gateway.watchlist import WatchEntry

SEEN, CREDITED, UNMATCHED, DROPPED = "seen", "credited", "unmatched", "dropped"
NAMES = {"#ds": "depositStatus"}


def deposit_id(network: str, txid: str, log_index: int) -> str:
    return f"{network}:{txid}:{log_index}"


def _map_key(t: Transfer) -> str:
    return f"{t.txid}:{t.log_index}"


def _map_entry(t: Transfer, *, final: bool) -> dict[str, Any]:
    """How a deposit appears inside its order item (the order view lists these)."""
    return {"txid": t.txid, "logIndex": t.log_index, "units": t.units, "blockNumber": t.block_number,
            "blockHash": t.block_hash, "blockTime": t.block_time, "sender": t.sender, "final": final}


def _log_fields(t: Transfer) -> dict[str, Any]:
    return {"network": t.network, "deposit_id": deposit_id(t.network, t.txid, t.log_index), "txid": t.txid,
            "block": t.block_number, "units": t.units, "recipient": t.recipient}


def _item(t: Transfer, status: str, **extra: Any) -> dict[str, Any]:
    pk, sk = store.deposit_key(t.network, t.txid, t.log_index)
    return {"pk": pk, "sk": sk, "depositId": deposit_id(t.network, t.txid, t.log_index), "network": t.network,
            "txid": t.txid, "logIndex": t.log_index, "blockNumber": t.block_number, "blockHash": t.block_hash,
            "blockTime": t.block_time, "sender": t.sender, "recipient": t.recipient, "units": t.units,
            "decimals": networks()[t.network].decimals, "depositStatus": status, "recordedAt": now_ms(), **extra}


def _final_item(t: Transfer, status: str, merchant_id: str | None, order_pk: str | None) -> dict[str, Any]:
    # Final deposits are listed per merchant by block time (gsi1); `unmatched` is the filter.
    index = {"gsi1pk": store.deposits_index_pk(merchant_id),
             "gsi1sk": f"{t.block_time:013d}#{t.txid}#{t.log_index}"} if merchant_id else {}
    return _item(t, status, merchantId=merchant_id, orderPk=order_pk, unmatched=status == UNMATCHED, **index)


def record_seen(t: Transfer, entry: WatchEntry) -> Applied:
    """A payment in a block that is not final yet: recorded as seen, its order -> confirming."""
    item = _item(t, SEEN, orderPk=entry.order_pk, merchantId=entry.merchant_id,
                 gsi1pk=store.seen_index_pk(t.network), gsi1sk=f"{t.block_number:012d}")

    def change(order: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        deposits = dict(order.get("deposits") or {})
        if OrderStatus(order["status"]) not in ACCEPTING or _map_key(t) in deposits:
            return None  # a closed order's payment is decided when final (unmatched)
        deposits[_map_key(t)] = _map_entry(t, final=False)
        # none (or dropped) -> seen
        claim = store.put_part(item, condition="attribute_not_exists(pk) OR #ds = :dropped",
                               values={":dropped": DROPPED}, names=NAMES)
        return {**order, "deposits": deposits}, [claim]

    with log_keys(**order_keys(entry.order_pk)):
        applied = transitions.apply(entry.order_pk, change)
        if applied.order is not None:
            logger.info("deposit seen (not final yet)", extra=_log_fields(t))
    return applied


def credit_final(t: Transfer, entry: WatchEntry | None, owner: str | None) -> tuple[str, Applied | None]:
    """A transfer in a final block: credit it to its order, or record it unmatched.
    Returns what became of it: credited, unmatched, or already (recorded before). Its lines carry
    the order's order_id and merchant_id (merchant_id alone for an unmatched one)."""
    existing = store.get(*store.deposit_key(t.network, t.txid, t.log_index))
    if existing and existing["depositStatus"] in (CREDITED, UNMATCHED):
        return "already", None
    if existing and existing["depositStatus"] == SEEN:
        order_pk: str | None = existing["orderPk"]
        owner = existing.get("merchantId") or owner
        # seen -> credited (or unmatched)
        condition, values = "#ds = :seen", {":seen": SEEN}
    else:
        order_pk = entry.order_pk if entry else None
        # none (or dropped) -> credited (or unmatched)
        condition, values = "attribute_not_exists(pk) OR #ds = :dropped", {":dropped": DROPPED}
    with log_keys(**{"merchant_id": owner, **order_keys(order_pk)}):
        return _credit_final(t, order_pk, owner, condition, values)


def _credit_final(t: Transfer, order_pk: str | None, owner: str | None, condition: str,
                  values: dict[str, Any]) -> tuple[str, Applied | None]:
    if order_pk:
        item = _final_item(t, CREDITED, owner, order_pk)

        def change(order: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            deposits = dict(order.get("deposits") or {})
            if _map_key(t) not in deposits and OrderStatus(order["status"]) not in ACCEPTING:
                return None
            deposits[_map_key(t)] = _map_entry(t, final=True)
            return {**order, "deposits": deposits}, [store.put_part(item, condition=condition, values=values,
                                                                     names=NAMES)]

        applied = transitions.apply(order_pk, change)
        if applied.conflict:
            return "already", None
        if applied.order is not None:
            logger.info("deposit credited", extra=_log_fields(t))
            return CREDITED, applied
    item = _final_item(t, UNMATCHED, owner, None)
    event_ids: list[str] = []
    event_parts: list[dict[str, Any]] = []
    if owner:  # the merchant the address belongs to hears of it
        event_id, event_parts = events.for_deposit(owner, record_view(item).model_dump(mode="json", by_alias=True))
        event_ids = [event_id]
    try:
        store.transact([store.put_part(item, condition=condition, values=values, names=NAMES), *event_parts])
    except store.TransactionConflict:
        return "already", None
    with log_keys(order_id=None, merchant_id=owner):
        logger.info("deposit unmatched: no open order takes it", extra=_log_fields(t))
        outbox.publish(event_ids)
    return UNMATCHED, None


def drop_reorged(network: str, final_block: int) -> list[Applied]:
    """Seen deposits at or below the final cursor that the final scan did not find: a reorg
    removed them. Each is dropped and its order goes back to the status it had without it."""
    dropped = []
    for hit in store.query_index_all(store.seen_index_pk(network), sk_to=f"{final_block:012d}"):
        item = store.get(hit["pk"], hit["sk"])
        if not item or item["depositStatus"] != SEEN:
            continue  # credited meanwhile (the index lags the table)
        key = f"{item['txid']}:{item['logIndex']}"

        def change(order: dict[str, Any], item: dict[str, Any] = item,
                   key: str = key) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            deposits = {k: v for k, v in (order.get("deposits") or {}).items() if k != key}
            # seen -> dropped
            drop = store.set_part(item["pk"], item["sk"], set_values={"depositStatus": DROPPED, "droppedAt": now_ms()},
                                  condition="#ds = :seen", values={":seen": SEEN}, remove=("gsi1pk", "gsi1sk"),
                                  names=NAMES)
            return {**order, "deposits": deposits}, [drop]

        applied = transitions.apply(item["orderPk"], change, reverted=True)
        if applied.order is not None:
            with log_keys(**order_keys(item["orderPk"])):
                logger.warning("deposit dropped: a reorg removed it", extra={
                    "network": network, "deposit_id": item["depositId"], "txid": item["txid"],
                    "block": int(item["blockNumber"])})
            dropped.append(applied)
    return dropped


def parse_deposit_id(value: str) -> tuple[str, str, int]:
    network, _, rest = value.partition(":")
    txid, _, index = rest.rpartition(":")
    if not (network and txid and index.isdigit()) or len(value) > 200:
        raise InvalidRequest("depositId must look like <network>:<txid>:<logIndex>", code="INVALID_DEPOSIT_ID")
    return network, txid, int(index)


def attach(merchant_id: str, deposit_id_: str, order_id: str) -> dict[str, Any]:
    """The merchant assigns one of its unmatched deposits to one of its orders."""
    network, txid, index = parse_deposit_id(deposit_id_)
    dep_pk, dep_sk = store.deposit_key(network, txid, index)
    dep = store.get(dep_pk, dep_sk)
    if dep is None or dep.get("merchantId") != merchant_id:
        raise NotFound(f"no deposit '{deposit_id_}'", code="DEPOSIT_NOT_FOUND")
    if dep["depositStatus"] != UNMATCHED:
        raise Conflict(f"deposit '{deposit_id_}' is already credited to an order", code="DEPOSIT_NOT_UNMATCHED")
    order_pk, _ = store.order_key(merchant_id, order_id)
    transfer = Transfer(network=network, txid=txid, log_index=index, block_number=int(dep["blockNumber"]),
                        block_hash=dep["blockHash"], sender=dep["sender"], recipient=dep["recipient"],
                        units=int(dep["units"]), block_time=int(dep["blockTime"]))

    def change(order: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if order["network"] != network:
            raise Conflict(f"the deposit is on {network}, the order on {order['network']}", code="NETWORK_MISMATCH")
        if order["status"] == OrderStatus.CANCELLED:
            raise Conflict(f"order '{order_id}' is cancelled", code="ORDER_CANCELLED")
        deposits = {**(order.get("deposits") or {}), _map_key(transfer): {**_map_entry(transfer, final=True),
                                                                          "attached": True}}
        # unmatched -> credited (attached by the merchant)
        claim = store.set_part(dep_pk, dep_sk, set_values={"depositStatus": CREDITED, "orderPk": order_pk,
                                                           "unmatched": False, "attachedAt": now_ms()},
                               condition="#ds = :unmatched AND merchantId = :m",
                               values={":unmatched": UNMATCHED, ":m": merchant_id}, names=NAMES)
        return {**order, "deposits": deposits}, [claim]

    try:
        applied = transitions.apply(order_pk, change)
    except LookupError as exc:
        raise NotFound(f"no order with orderId '{order_id}'", code="ORDER_NOT_FOUND") from exc
    if applied.order is None:
        raise Conflict(f"deposit '{deposit_id_}' was attached meanwhile", code="DEPOSIT_NOT_UNMATCHED")
    with log_keys(**order_keys(order_pk)):
        logger.info("deposit attached by the merchant", extra=_log_fields(transfer))
    return applied.order


def list_deposits(merchant_id: str, *, unmatched_only: bool, limit: int, cursor: str | None) -> DepositListView:
    filters = {"unmatched": True} if unmatched_only else None
    items, next_cursor = store.query_index(store.deposits_index_pk(merchant_id), sk_from="0", sk_to="~",
                                           limit=limit, cursor=cursor, filters=filters)
    return DepositListView(deposits=[record_view(i) for i in items], next_cursor=next_cursor)


def record_view(i: dict[str, Any]) -> DepositRecordView:
    """A final deposit as GET /v1/deposits lists it (and a deposit.unmatched event carries it)."""
    return DepositRecordView(
        deposit_id=i["depositId"], network=i["network"], txid=i["txid"], log_index=int(i["logIndex"]),
        block_number=int(i["blockNumber"]), block_time=int(i["blockTime"]), sender=i["sender"],
        recipient=i["recipient"], amount=format_units(int(i["units"]), int(i["decimals"])),
        unmatched=bool(i["unmatched"]),
        order_id=i["orderPk"].split("#", 2)[2] if i.get("orderPk") else None,
    )
