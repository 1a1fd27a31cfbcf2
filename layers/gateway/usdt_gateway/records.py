"""Orders, deposits, ledger entries and webhook events as typed records.

Each record reads its DynamoDB item with `from_item` and writes it back with `to_item`, under the
same attribute names and types the item has always had; its key comes from the matching key
function in store.py (`store.order_key`, `store.deposit_key`, `store.ledger_key`,
`store.event_key`, `store.outbox_key`), as `cursor.Cursor` and `watchlist.WatchEntry` do for
theirs. The money and state logic reads attributes, so a misspelt one is a type error, not a
silent 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from usdt_gateway import store
from usdt_gateway.schemas import OrderException, OrderStatus


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class OrderDeposit:
    """A deposit as its order item lists it (the `deposits` map, keyed by `key`)."""

    txid: str
    log_index: int
    units: int
    block_number: int
    block_hash: str | None
    block_time: int
    sender: str
    final: bool
    reversed: bool = False  # a deep reorg took it away: listed, counted for nothing
    attached: bool = False  # credited by the merchant (POST /v1/deposits/{id}/attach)
    # Held until a second source or the operator confirms it (deposits.hold): pending while the
    # order is open, counted for nothing once it closes.
    held: bool = False
    late: bool = False  # a held deposit credited after its order closed: a late payment (paid_late)

    @property
    def key(self) -> str:
        return f"{self.txid}:{self.log_index}"

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> OrderDeposit:
        return cls(
            txid=item["txid"],
            log_index=int(item["logIndex"]),
            units=int(item["units"]),
            block_number=int(item["blockNumber"]),
            block_hash=item.get("blockHash"),
            block_time=int(item["blockTime"]),
            sender=item["sender"],
            final=bool(item["final"]),
            reversed=bool(item.get("reversed")),
            attached=bool(item.get("attached")),
            held=bool(item.get("held")),
            late=bool(item.get("late")),
        )

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "txid": self.txid,
            "logIndex": self.log_index,
            "units": self.units,
            "blockNumber": self.block_number,
            "blockHash": self.block_hash,
            "blockTime": self.block_time,
            "sender": self.sender,
            "final": self.final,
        }
        # Flags are stored only once set.
        if self.reversed:
            item["reversed"] = True
        if self.attached:
            item["attached"] = True
        if self.held:
            item["held"] = True
        if self.late:
            item["late"] = True
        return item


@dataclass(frozen=True)
class Order:
    """An ORDER item. The attributes after `version` are written by every state change
    (transitions.apply) and only by it: an order never changed (version 0) has none of them."""

    merchant_id: str
    order_id: str
    public_id: str
    network: str
    chain_id: int
    token_contract: str
    decimals: int
    amount_units: int  # what the payer must send (a tagged amount on a shared address)
    requested_units: int  # what the merchant asked for
    tolerance_units: int
    address: str
    payment_uri: str
    status: OrderStatus
    expires_at: int
    created_at: int
    watch_until: int | None = None
    address_index: int | None = None
    payment_url: str | None = None  # absent on orders older than the stored URL
    qr_code_data: str | None = None
    notify_url: str | None = None
    return_url: str | None = None
    metadata: dict[str, Any] | None = None
    fingerprint: str | None = None
    version: int = 0
    deposits: Mapping[str, OrderDeposit] = field(default_factory=dict)
    closed_at: int | None = None
    exception: OrderException | None = None
    paid_units: int = 0  # final deposits
    seen_units: int = 0  # deposits seen, not final yet
    excess_units: int = 0
    txid: str | None = None
    confirmed_at: int | None = None
    updated_at: int | None = None
    event_seq: int = 0
    # Contract mode: the deposit address's CREATE2 salt and factory, set at creation.
    deposit_salt: str | None = None
    deposit_factory: str | None = None
    # Where its money is, kept by the settlement (settlement/batches.py), never by a state change:
    # the sweep covering its deposits now, the units its sweeps moved so far, and the units a
    # sweep found gone from the address (moved by another path: someone else's sweep, a refund).
    sweeping_id: str | None = None
    swept_units: int = 0
    # Kept by its refunds (settlement/refunds.py), never by a state change: the refund awaiting
    # its signature or sent now (one at a time), the units completed refunds sent back, the part
    # of them that was credited to the order (the rest: money no order took), and whether, when
    # the last one completed, refunds had sent back all the money its deposit address received.
    refunding_id: str | None = None
    refunded_units: int = 0
    refunded_paid_units: int = 0
    refunded_all: bool = False
    missing_units: int = 0

    @property
    def pk(self) -> str:
        return store.order_key(self.merchant_id, self.order_id)[0]

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Order:
        exception = item.get("exception")
        return cls(
            merchant_id=item["merchantId"],
            order_id=item["orderId"],
            public_id=item["publicId"],
            network=item["network"],
            chain_id=int(item["chainId"]),
            token_contract=item["tokenContract"],
            decimals=int(item["decimals"]),
            amount_units=int(item["amountUnits"]),
            requested_units=int(item["requestedUnits"]),
            tolerance_units=int(item.get("toleranceUnits") or 0),
            address=item["address"],
            payment_uri=item["paymentUri"],
            status=OrderStatus(item["status"]),
            expires_at=int(item["expiresAt"]),
            created_at=int(item["createdAt"]),
            watch_until=_int_or_none(item.get("watchUntil")),
            address_index=_int_or_none(item.get("addressIndex")),
            payment_url=item.get("paymentUrl"),
            qr_code_data=item.get("qrCodeData"),
            notify_url=item.get("notifyUrl"),
            return_url=item.get("returnUrl"),
            metadata=item.get("metadata"),
            fingerprint=item.get("fingerprint"),
            version=int(item.get("version") or 0),
            deposits={k: OrderDeposit.from_item(d) for k, d in (item.get("deposits") or {}).items()},
            closed_at=_int_or_none(item.get("closedAt")),
            exception=OrderException(exception) if exception else None,
            paid_units=int(item.get("paidUnits") or 0),
            seen_units=int(item.get("seenUnits") or 0),
            excess_units=int(item.get("excessUnits") or 0),
            txid=item.get("txid"),
            confirmed_at=_int_or_none(item.get("confirmedAt")),
            updated_at=_int_or_none(item.get("updatedAt")),
            event_seq=int(item.get("eventSeq") or 0),
            deposit_salt=item.get("depositSalt"),
            deposit_factory=item.get("depositFactory"),
            sweeping_id=item.get("sweepingId"),
            swept_units=int(item.get("sweptUnits") or 0),
            refunding_id=item.get("refundingId"),
            refunded_units=int(item.get("refundedUnits") or 0),
            refunded_paid_units=int(item.get("refundedPaidUnits") or 0),
            refunded_all=bool(item.get("refundedAll")),
            missing_units=int(item.get("missingUnits") or 0),
        )

    def change_fields(self) -> dict[str, Any]:
        """The attributes a state change writes (with `version`), as stored."""
        return {
            "deposits": {k: d.to_item() for k, d in self.deposits.items()},
            "closedAt": self.closed_at,
            "status": self.status.value,
            "exception": self.exception.value if self.exception else None,
            "paidUnits": self.paid_units,
            "seenUnits": self.seen_units,
            "excessUnits": self.excess_units,
            "txid": self.txid,
            "confirmedAt": self.confirmed_at,
            "version": self.version,
            "updatedAt": self.updated_at,
            "eventSeq": self.event_seq,
        }

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.order_key(self.merchant_id, self.order_id)
        item: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "merchantId": self.merchant_id,
            "orderId": self.order_id,
            "publicId": self.public_id,
            "paymentUrl": self.payment_url,
            "network": self.network,
            "chainId": self.chain_id,
            "tokenContract": self.token_contract,
            "decimals": self.decimals,
            "amountUnits": self.amount_units,
            "requestedUnits": self.requested_units,
            "paidUnits": self.paid_units,
            "toleranceUnits": self.tolerance_units,
            "address": self.address,
            "addressIndex": self.address_index,
            "paymentUri": self.payment_uri,
            "qrCodeData": self.qr_code_data,
            "status": self.status.value,
            "expiresAt": self.expires_at,
            "watchUntil": self.watch_until,
            "createdAt": self.created_at,
            "notifyUrl": self.notify_url,
            "returnUrl": self.return_url,
            "metadata": self.metadata,
            "fingerprint": self.fingerprint,
            "version": self.version,
            "gsi1pk": store.orders_index_pk(self.merchant_id),
            "gsi1sk": f"{self.created_at:013d}#{self.order_id}",
        }
        if self.deposit_salt is not None:  # contract mode only
            item |= {"depositSalt": self.deposit_salt, "depositFactory": self.deposit_factory}
        return item | self.change_fields() if self.version else item


class DepositStatus(StrEnum):
    """A DEP item's `depositStatus` (deposits.py describes each)."""

    SEEN = "seen"
    CREDITED = "credited"
    UNMATCHED = "unmatched"
    IGNORED = "ignored"
    DROPPED = "dropped"
    REVERSED = "reversed"
    DISPUTED = "disputed"
    UNVERIFIED = "unverified"
    REJECTED = "rejected"


FINAL_STATUSES = frozenset({DepositStatus.CREDITED, DepositStatus.UNMATCHED, DepositStatus.IGNORED})
# Found in a final block and held there, not counted, until a second source (or the operator)
# confirms it (chain/second_source.py, deposits.hold).
HELD_STATUSES = frozenset({DepositStatus.DISPUTED, DepositStatus.UNVERIFIED})


def deposit_id(network: str, txid: str, log_index: int) -> str:
    return f"{network}:{txid}:{log_index}"


@dataclass(frozen=True)
class Deposit:
    """A DEP item: one Transfer log, recorded once whatever block holds it."""

    network: str
    txid: str
    log_index: int
    block_number: int
    block_hash: str
    block_time: int
    sender: str
    recipient: str
    units: int
    decimals: int
    status: DepositStatus
    recorded_at: int
    order_pk: str | None = None
    merchant_id: str | None = None
    unmatched: bool | None = None  # stored on final deposits only (the listing's filter)
    reason: str | None = None
    index_pk: str | None = None  # gsi1: the merchant's listing, or the network's seen deposits
    index_sk: str | None = None
    dropped_at: int | None = None
    reversed_at: int | None = None
    reversed_from: DepositStatus | None = None
    attached_at: int | None = None
    source: str | None = None  # held: the RPC endpoint that reported it
    held_detail: str | None = None  # held: why (what a second endpoint answered)
    confirmed_by: str | None = None  # credited after a hold: the endpoint that confirmed it, or "operator"

    @property
    def deposit_id(self) -> str:
        return deposit_id(self.network, self.txid, self.log_index)

    @property
    def key(self) -> tuple[str, str]:
        return store.deposit_key(self.network, self.txid, self.log_index)

    @property
    def order_key(self) -> str:
        """Its key in its order's `deposits` map."""
        return f"{self.txid}:{self.log_index}"

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Deposit:
        unmatched, was = item.get("unmatched"), item.get("reversedFrom")
        return cls(
            network=item["network"],
            txid=item["txid"],
            log_index=int(item["logIndex"]),
            block_number=int(item["blockNumber"]),
            block_hash=item["blockHash"],
            block_time=int(item["blockTime"]),
            sender=item["sender"],
            recipient=item["recipient"],
            units=int(item["units"]),
            decimals=int(item["decimals"]),
            status=DepositStatus(item["depositStatus"]),
            recorded_at=int(item["recordedAt"]),
            order_pk=item.get("orderPk"),
            merchant_id=item.get("merchantId"),
            unmatched=None if unmatched is None else bool(unmatched),
            reason=item.get("reason"),
            index_pk=item.get("gsi1pk"),
            index_sk=item.get("gsi1sk"),
            dropped_at=_int_or_none(item.get("droppedAt")),
            reversed_at=_int_or_none(item.get("reversedAt")),
            reversed_from=DepositStatus(was) if was else None,
            attached_at=_int_or_none(item.get("attachedAt")),
            source=item.get("source"),
            held_detail=item.get("heldDetail"),
            confirmed_by=item.get("confirmedBy"),
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = self.key
        return {
            "pk": pk,
            "sk": sk,
            "depositId": self.deposit_id,
            "network": self.network,
            "txid": self.txid,
            "logIndex": self.log_index,
            "blockNumber": self.block_number,
            "blockHash": self.block_hash,
            "blockTime": self.block_time,
            "sender": self.sender,
            "recipient": self.recipient,
            "units": self.units,
            "decimals": self.decimals,
            "depositStatus": self.status.value,
            "recordedAt": self.recorded_at,
            "merchantId": self.merchant_id,
            "orderPk": self.order_pk,
            "unmatched": self.unmatched,
            "reason": self.reason,
            "gsi1pk": self.index_pk,
            "gsi1sk": self.index_sk,
            "droppedAt": self.dropped_at,
            "reversedAt": self.reversed_at,
            "reversedFrom": self.reversed_from.value if self.reversed_from else None,
            "attachedAt": self.attached_at,
            "source": self.source,
            "heldDetail": self.held_detail,
            "confirmedBy": self.confirmed_by,
        }


@dataclass(frozen=True)
class LedgerEntry:
    """A LEDGER#<network> item: a final deposit by block, so a range read again after a deep
    reorg can be compared with what was recorded in it."""

    network: str
    block_number: int
    txid: str
    log_index: int
    deposit_pk: str
    ttl: int

    @property
    def key(self) -> tuple[str, str]:
        return store.ledger_key(self.network, self.block_number, self.txid, self.log_index)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> LedgerEntry:
        network = item["pk"].split("#", 1)[1]
        _, txid, log_index = item["sk"].split("#")
        return cls(network, int(item["blockNumber"]), txid, int(log_index), item["depositPk"], int(item["ttl"]))

    def to_item(self) -> dict[str, Any]:
        pk, sk = self.key
        return {"pk": pk, "sk": sk, "depositPk": self.deposit_pk, "blockNumber": self.block_number, "ttl": self.ttl}


def event_index_sk(created_at: int, sequence: int, event_id: str) -> str:
    return f"{created_at:013d}#{sequence:08d}#{event_id}"  # one change's events stay in their order


@dataclass(frozen=True)
class Event:
    """An EVENT item as written with the change it reports. Its delivery (status, attempts) is
    kept on the same item by the webhook sender (webhooks/)."""

    event_id: str
    type: str
    merchant_id: str
    sequence: int
    created_at: int
    body: str  # the JSON the merchant receives, byte for byte on every attempt
    order_id: str | None = None
    order_pk: str | None = None
    notify_url: str | None = None
    delivery_status: str = "pending"
    attempt_count: int = 0

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Event:
        return cls(
            event_id=item["eventId"],
            type=item["type"],
            merchant_id=item["merchantId"],
            sequence=int(item["sequence"]),
            created_at=int(item["createdAt"]),
            body=item["body"],
            order_id=item.get("orderId"),
            order_pk=item.get("orderPk"),
            notify_url=item.get("notifyUrl"),
            delivery_status=item.get("deliveryStatus") or "pending",
            attempt_count=int(item.get("attemptCount") or 0),
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.event_key(self.event_id)
        return {
            "pk": pk,
            "sk": sk,
            "eventId": self.event_id,
            "type": self.type,
            "merchantId": self.merchant_id,
            "orderId": self.order_id,
            "orderPk": self.order_pk,
            "notifyUrl": self.notify_url,
            "sequence": self.sequence,
            "createdAt": self.created_at,
            "body": self.body,
            "deliveryStatus": self.delivery_status,
            "attemptCount": self.attempt_count,
            "gsi1pk": store.events_index_pk(self.merchant_id),
            "gsi1sk": event_index_sk(self.created_at, self.sequence, self.event_id),
        }


@dataclass(frozen=True)
class OutboxMarker:
    """An OUTBOX item: stays until SQS has taken the event (the sweeper's work list); the merchant
    and order are there for the sweeper's log lines."""

    event_id: str
    created_at: int
    sequence: int
    merchant_id: str | None = None
    order_id: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> OutboxMarker:
        created_at, sequence, _ = item["gsi1sk"].split("#", 2)
        return cls(item["eventId"], int(created_at), int(sequence), item.get("merchantId"), item.get("orderId"))

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.outbox_key(self.event_id)
        return {
            "pk": pk,
            "sk": sk,
            "eventId": self.event_id,
            "gsi1pk": store.OUTBOX_INDEX_PK,
            "gsi1sk": event_index_sk(self.created_at, self.sequence, self.event_id),
            "merchantId": self.merchant_id,
            "orderId": self.order_id,
        }
