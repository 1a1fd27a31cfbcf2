"""The API's objects as frozen dataclasses.

Amounts are Decimal, never float. Times are timezone-aware UTC datetimes (the API sends
milliseconds since the epoch; nothing is lost). Enumerations are str subclasses, so
`order.status == "confirmed"` holds; a value this version does not know yet is kept as the plain
string. Fields the API adds later are ignored by the typed attributes and kept, with everything
else, in `raw`: the decoded JSON object as received.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

__all__ = [
    "DeliveryAttempt",
    "DeliveryStatus",
    "Deposit",
    "DepositRecord",
    "DisabledUrl",
    "FundsLocation",
    "Network",
    "Order",
    "OrderException",
    "OrderStatus",
    "Page",
    "Refund",
    "RefundStatus",
    "Settlement",
    "SettlementStatus",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookTestResult",
    "XpubAddress",
    "XpubDeposit",
    "XpubSweep",
    "from_ms",
    "to_ms",
]

E = TypeVar("E", bound=Enum)
T = TypeVar("T")
# The package supports Python 3.10: no enum.StrEnum, datetime.UTC or PEP 695 generics (hence the noqa's).
_UTC = timezone.utc  # noqa: UP017
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)


class OrderStatus(str, Enum):  # noqa: UP042
    """docs/order-states.md. Only CONFIRMED means paid (Order.paid)."""

    PENDING = "pending"
    CONFIRMING = "confirming"
    UNDERPAID = "underpaid"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class OrderException(str, Enum):  # noqa: UP042
    OVERPAID = "overpaid"
    PAID_LATE = "paid_late"

    def __str__(self) -> str:
        return self.value


class FundsLocation(str, Enum):  # noqa: UP042
    """Where a contract-mode order's money is (docs/settlement.md); None in the other modes."""

    ON_DEPOSIT_ADDRESS = "on_deposit_address"  # on the order's deposit address
    SWEEPING = "sweeping"  # a sweep to your treasury carries it now
    SWEPT = "swept"  # in your treasury
    REFUNDED = "refunded"  # sent back with the owner's signature

    def __str__(self) -> str:
        return self.value


class SettlementStatus(str, Enum):  # noqa: UP042
    COMPLETED = "completed"  # the sweep transaction is final: the money is in your treasury
    FAILED = "failed"  # it reverted or could not be sent; its deposits wait for the next sweep

    def __str__(self) -> str:
        return self.value


class RefundStatus(str, Enum):  # noqa: UP042
    """Where a refund stands: it waits for the owner's signature, then the gateway submits it."""

    AWAITING_SIGNATURE = "awaiting_signature"
    SUBMITTED = "submitted"  # signed and sent on chain, not final yet
    COMPLETED = "completed"  # the refund transaction is final
    FAILED = "failed"  # see `reason`
    EXPIRED = "expired"  # its deadline passed unsigned: the signature would be void now

    def __str__(self) -> str:
        return self.value


class DeliveryStatus(str, Enum):  # noqa: UP042
    """Where a webhook event's delivery stands (docs/webhooks.md)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILING = "failing"
    DEAD = "dead"
    DISABLED = "disabled"

    def __str__(self) -> str:
        return self.value


def from_ms(value: Any) -> datetime:
    """Milliseconds since the epoch as an aware UTC datetime (exact to the millisecond)."""
    millis = int(value)
    seconds, rest = divmod(millis, 1000)
    return datetime.fromtimestamp(seconds, tz=_UTC).replace(microsecond=rest * 1000)


def to_ms(value: datetime | int) -> int:
    """A datetime (naive ones are taken as UTC) or milliseconds since the epoch, as milliseconds."""
    if isinstance(value, bool):
        raise TypeError("a time is a datetime or milliseconds since the epoch, not a bool")
    if isinstance(value, int):
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"a time is a datetime or milliseconds since the epoch, not {type(value).__name__}")
    aware = value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _opt_ms(value: Any) -> datetime | None:
    return None if value is None else from_ms(value)


def _dec(value: Any) -> Decimal:
    if isinstance(value, float):
        raise TypeError("an amount arrived as a float")
    return Decimal(str(value))


def _enum(kind: type[E], value: Any) -> E | str:  # noqa: UP047
    try:
        return kind(value)
    except ValueError:
        return str(value)


def _raw(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(data)


def _raw_field() -> Any:
    """The decoded JSON object as received, unknown fields included."""
    return field(default_factory=dict, repr=False, compare=False, hash=False)


@dataclass(frozen=True)
class Page(Generic[T]):  # noqa: UP046
    """One page of a list, newest first; `next_cursor` fetches the next (None: this is the last)."""

    items: tuple[T, ...]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Deposit:
    """A payment to an order's address, as the order shows it."""

    txid: str
    log_index: int
    amount: Decimal
    sender: str
    block_number: int
    block_time: datetime
    confirmations: int
    final: bool  # final under the network's policy, and counted in the order's paid_amount
    reversed: bool = False  # was final, then a reorg deeper than the finality removed it: not counted
    # held until a second RPC endpoint or the operator confirms it: pending while the order is
    # open, not counted once it has expired (deposit.held, then deposit.released or .rejected)
    held: bool = False
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deposit:
        return cls(
            txid=data["txid"],
            log_index=int(data["logIndex"]),
            amount=_dec(data["amount"]),
            sender=data["sender"],
            block_number=int(data["blockNumber"]),
            block_time=from_ms(data["blockTime"]),
            confirmations=int(data["confirmations"]),
            final=bool(data["final"]),
            reversed=bool(data.get("reversed", False)),
            held=bool(data.get("held", False)),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class Order:
    order_id: str
    public_id: str
    network: str
    chain_id: int
    currency: str
    token_contract: str
    amount: Decimal  # exactly what the customer must send (in fixed-address mode, with its tag)
    requested_amount: Decimal  # what was asked for at creation
    address: str
    payment_url: str  # the payer's page
    payment_uri: str  # what the QR code encodes (EIP-681 on EVM chains, the address on Tron)
    qr_code_data: str = field(repr=False)  # PNG data URI of the QR code
    status: OrderStatus | str = OrderStatus.PENDING
    paid: bool = False  # final and paid in full: true exactly when status is CONFIRMED
    exception: OrderException | str | None = None  # the first of `exceptions` (PAID_LATE wins)
    exceptions: tuple[OrderException | str, ...] = ()  # a late overpayment is PAID_LATE and OVERPAID
    paid_amount: Decimal = Decimal(0)  # sum of final deposits
    pending_amount: Decimal = Decimal(0)  # seen on chain, not final yet
    excess_amount: Decimal = Decimal(0)
    txid: str | None = None
    confirmed_at: datetime | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    notify_url: str | None = None
    return_url: str | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)
    deposits: tuple[Deposit, ...] = ()
    funds: FundsLocation | str | None = None  # contract mode, once a final deposit is credited
    raw: Mapping[str, Any] = _raw_field()

    @property
    def is_paid(self) -> bool:
        """Final and paid in full (or within tolerance): the only state to ship the goods on."""
        return self.paid or self.status == OrderStatus.CONFIRMED

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        exception = data.get("exception")
        status = _enum(OrderStatus, data["status"])
        return cls(
            order_id=data["orderId"],
            public_id=data["publicId"],
            network=data["network"],
            chain_id=int(data["chainId"]),
            currency=data.get("currency", "USDT"),
            token_contract=data["tokenContract"],
            amount=_dec(data["amount"]),
            requested_amount=_dec(data.get("requestedAmount", data["amount"])),
            address=data["address"],
            payment_url=data["paymentUrl"],
            payment_uri=data["paymentUri"],
            qr_code_data=data.get("qrCodeData", ""),
            # Gateways older than `paid` said it with the status alone.
            status=status,
            paid=bool(data.get("paid", status == OrderStatus.CONFIRMED)),
            exception=None if exception is None else _enum(OrderException, exception),
            exceptions=tuple(_enum(OrderException, e) for e in data.get("exceptions") or ()),
            paid_amount=_dec(data.get("paidAmount", 0)),
            pending_amount=_dec(data.get("pendingAmount", 0)),
            excess_amount=_dec(data.get("excessAmount", 0)),
            txid=data.get("txid"),
            confirmed_at=_opt_ms(data.get("confirmedAt")),
            expires_at=_opt_ms(data.get("expiresAt")),
            created_at=_opt_ms(data.get("createdAt")),
            notify_url=data.get("notifyUrl"),
            return_url=data.get("returnUrl"),
            metadata=data.get("metadata"),
            deposits=tuple(Deposit.from_dict(d) for d in data.get("deposits") or ()),
            funds=None if data.get("funds") is None else _enum(FundsLocation, data["funds"]),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class DepositRecord:
    """A final deposit to one of your addresses (GET /v1/deposits)."""

    deposit_id: str  # <network>:<txid>:<logIndex>
    network: str
    txid: str
    log_index: int
    block_number: int
    block_time: datetime
    sender: str
    recipient: str
    amount: Decimal
    unmatched: bool  # no order took it: attach it with Client.attach_deposit
    order_id: str | None = None
    # credited, unmatched, ignored (below the network's minimum deposit), reversed (a deep reorg),
    # held (disputed, unverified: not counted until confirmed) or rejected (a held one found on no
    # explorer: never counted)
    status: str = "credited"
    # below_minimum (ignored), reorg (reversed), second_source_disagrees (disputed),
    # awaiting_second_source (unverified) or not_on_chain (rejected)
    reason: str | None = None
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DepositRecord:
        return cls(
            deposit_id=data["depositId"],
            network=data["network"],
            txid=data["txid"],
            log_index=int(data["logIndex"]),
            block_number=int(data["blockNumber"]),
            block_time=from_ms(data["blockTime"]),
            sender=data["sender"],
            recipient=data["recipient"],
            amount=_dec(data["amount"]),
            unmatched=bool(data["unmatched"]),
            order_id=data.get("orderId"),
            status=data.get("status") or ("unmatched" if data["unmatched"] else "credited"),
            reason=data.get("reason"),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class Network:
    network: str  # what create_order takes, e.g. "tron", "eth", "bsc"
    name: str
    family: str  # "evm" or "tron"
    chain_id: int
    currency: str
    token_contract: str
    decimals: int
    finality: str  # "finalized", "solidified" or "N confirmations"
    confirmations: int | None
    min_amount: Decimal
    max_amount: Decimal
    testnet: bool
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Network:
        confirmations = data.get("confirmations")
        return cls(
            network=data["network"],
            name=data["name"],
            family=data["family"],
            chain_id=int(data["chainId"]),
            currency=data.get("currency", "USDT"),
            token_contract=data["tokenContract"],
            decimals=int(data["decimals"]),
            finality=data["finality"],
            confirmations=None if confirmations is None else int(confirmations),
            min_amount=_dec(data["minAmount"]),
            max_amount=_dec(data["maxAmount"]),
            testnet=bool(data["testnet"]),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class DeliveryAttempt:
    n: int  # 1 for the first; numbering continues across resends
    at: datetime
    url: str | None
    status_code: int | None
    latency_ms: int
    error: str | None  # None for a 2xx
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryAttempt:
        status_code = data.get("statusCode")
        return cls(
            n=int(data["n"]),
            at=from_ms(data["at"]),
            url=data.get("url"),
            status_code=None if status_code is None else int(status_code),
            latency_ms=int(data.get("latencyMs") or 0),
            error=data.get("error"),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class WebhookDelivery:
    """One webhook event and every attempt to deliver it."""

    delivery_id: str  # the event id: webhook-id, and `id` in the body
    type: str
    order_id: str | None
    created_at: datetime
    status: DeliveryStatus | str
    attempts: tuple[DeliveryAttempt, ...]
    next_attempt_at: datetime | None
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WebhookDelivery:
        return cls(
            delivery_id=data["deliveryId"],
            type=data["type"],
            order_id=data.get("orderId"),
            created_at=from_ms(data["createdAt"]),
            status=_enum(DeliveryStatus, data["status"]),
            attempts=tuple(DeliveryAttempt.from_dict(a) for a in data.get("attempts") or ()),
            next_attempt_at=_opt_ms(data.get("nextAttemptAt")),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class WebhookTestResult:
    delivery_id: str
    url: str
    ok: bool  # the receiver answered 2xx
    status_code: int | None
    latency_ms: int
    error: str | None
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WebhookTestResult:
        status_code = data.get("statusCode")
        return cls(
            delivery_id=data["deliveryId"],
            url=data["url"],
            ok=bool(data["ok"]),
            status_code=None if status_code is None else int(status_code),
            latency_ms=int(data.get("latencyMs") or 0),
            error=data.get("error"),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class DisabledUrl:
    url: str
    disabled_at: datetime
    reason: str
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DisabledUrl:
        return cls(
            url=data["url"], disabled_at=from_ms(data["disabledAt"]), reason=data.get("reason", ""), raw=_raw(data)
        )


@dataclass(frozen=True)
class WebhookEndpoint:
    url: str | None  # the default webhook URL (an order's notify_url takes precedence)
    enabled: bool
    disabled_urls: tuple[DisabledUrl, ...]
    previous_secret_valid_until: datetime | None  # while a secret rotation overlaps, the old one signs too
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WebhookEndpoint:
        rotation = data.get("secretRotation") or {}
        return cls(
            url=data.get("url"),
            enabled=bool(data["enabled"]),
            disabled_urls=tuple(DisabledUrl.from_dict(d) for d in data.get("disabledUrls") or ()),
            previous_secret_valid_until=_opt_ms(rotation.get("previousValidUntil")),
            raw=_raw(data),
        )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Settlement:
    """A sweep of your deposit addresses to your treasury (contract mode): GET /v1/settlements,
    and the data of the settlement.completed and settlement.failed events."""

    settlement_id: str
    network: str
    status: SettlementStatus | str
    factory: str  # your DepositFactory on that network
    token_contract: str
    amount: Decimal  # the covered deposits' sum, unmatched ones included
    orders: tuple[str, ...]  # the orderIds whose deposits it covers
    deposits: tuple[str, ...]  # the depositIds it covers
    tx_hash: str | None  # the mined sweep transaction; None if none was
    gas_paid: int  # wei the gateway's relayer paid for it
    reason: str | None  # why it failed
    created_at: datetime
    closed_at: datetime
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settlement:
        return cls(
            settlement_id=data["settlementId"],
            network=data["network"],
            status=_enum(SettlementStatus, data["status"]),
            factory=data["factory"],
            token_contract=data["tokenContract"],
            amount=_dec(data["amount"]),
            orders=tuple(data.get("orders") or ()),
            deposits=tuple(data.get("deposits") or ()),
            tx_hash=data.get("txHash"),
            gas_paid=int(data.get("gasPaid") or 0),
            reason=data.get("reason"),
            created_at=from_ms(data["createdAt"]),
            closed_at=from_ms(data["closedAt"]),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class Refund:
    """Money an order did not take, sent from its deposit address to an address you name
    (contract mode). It moves only with your factory owner's EIP-712 signature of `typed_data`:
    see usdt_gateway_client.refunds, which checks it before signing. The refund.* events carry it
    without `typed_data`."""

    refund_id: str
    order_id: str
    network: str
    status: RefundStatus | str
    to: str  # the recipient, lowercase hex
    amount: Decimal
    deposit_address: str  # where the money is taken from
    factory: str  # your DepositFactory: the typed data's verifyingContract
    token_contract: str
    owner: str  # the address whose signature is required: the factory's OWNER
    deadline: int  # unix seconds, as signed: the signature is void once a block is later
    # As the gateway sent them: sign_refund recomputes the digest from typed_data and refuses a
    # mismatch, so neither is trusted as it stands.
    digest: str
    typed_data: Mapping[str, Any] | None = field(default=None, repr=False, compare=False, hash=False)
    tx_hash: str | None = None  # the refund transaction, once submitted
    gas_paid: int | None = None  # wei the gateway's relayer paid for it
    reason: str | None = None  # why it failed
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = _raw_field()

    @property
    def deadline_at(self) -> datetime:
        """The deadline as a UTC datetime (ValueError past the year 9999)."""
        return from_ms(self.deadline * 1000)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Refund:
        typed_data = data.get("typedData")
        return cls(
            refund_id=data["refundId"],
            order_id=data["orderId"],
            network=data["network"],
            status=_enum(RefundStatus, data["status"]),
            to=data["to"],
            amount=_dec(data["amount"]),
            deposit_address=data["depositAddress"],
            factory=data["factory"],
            token_contract=data["tokenContract"],
            owner=data["owner"],
            deadline=int(data["deadline"]),
            digest=data.get("digest") or "",
            # A copy: changing `raw` leaves what gets signed as it arrived.
            typed_data=None if typed_data is None else copy.deepcopy(dict(typed_data)),
            tx_hash=data.get("txHash"),
            gas_paid=_opt_int(data.get("gasPaid")),
            reason=data.get("reason"),
            created_at=_opt_ms(data.get("createdAt")),
            updated_at=_opt_ms(data.get("updatedAt")),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook's event: WebhookEvent.from_dict(verify_webhook(headers, body, secret))."""

    id: str  # the same on every retry: drop duplicates by it
    type: str  # what changed, e.g. "order.confirmed"; whether the order is paid: `order.paid`
    created_at: datetime
    sequence: int | None  # per order: ignore an event whose sequence is not above the last processed
    data: Mapping[str, Any] = field(hash=False)
    raw: Mapping[str, Any] = _raw_field()

    @property
    def order(self) -> Order | None:
        """The whole order after the change, for order.* events: of an event you accept (its
        sequence above the last one processed), the order's current state, `paid` included."""
        return Order.from_dict(self.data) if self.type.startswith("order.") else None

    @property
    def deposit(self) -> DepositRecord | None:
        """The deposit, for deposit.* events."""
        return DepositRecord.from_dict(self.data) if self.type.startswith("deposit.") else None

    @property
    def settlement(self) -> Settlement | None:
        """The sweep, for settlement.completed and settlement.failed."""
        return Settlement.from_dict(self.data) if self.type.startswith("settlement.") else None

    @property
    def refund(self) -> Refund | None:
        """The refund (without typed_data), for refund.completed and refund.failed."""
        return Refund.from_dict(self.data) if self.type.startswith("refund.") else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WebhookEvent:
        sequence = data.get("sequence")
        return cls(
            id=data["id"],
            type=data["type"],
            created_at=from_ms(data["createdAt"]),
            sequence=None if sequence is None else int(sequence),
            data=dict(data.get("data") or {}),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class XpubDeposit:
    """A final deposit that brought money to one of your xpub addresses."""

    deposit_id: str
    txid: str
    log_index: int
    block_number: int
    units: int  # base units of the token
    status: str  # credited | unmatched (no order took it)
    order_id: str | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> XpubDeposit:
        return cls(
            deposit_id=data["depositId"],
            txid=data["txid"],
            log_index=int(data["logIndex"]),
            block_number=int(data["blockNumber"]),
            units=int(data["units"]),
            status=data["status"],
            order_id=data.get("orderId"),
        )


@dataclass(frozen=True)
class XpubAddress:
    """One of your xpub deposit addresses holding final money not recorded as swept
    (GET /v1/xpub/addresses); you hold its key: m/44'/coin'/account'/0/index of your wallet."""

    network: str
    chain_id: int
    token_contract: str
    decimals: int
    address: str
    index: int
    held_units: int  # its final deposits' sum
    swept_units: int  # what your recorded sweeps took
    unswept_units: int  # held - swept
    deposits: tuple[XpubDeposit, ...]
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> XpubAddress:
        return cls(
            network=data["network"],
            chain_id=int(data["chainId"]),
            token_contract=data["tokenContract"],
            decimals=int(data["decimals"]),
            address=data["address"],
            index=int(data["index"]),
            held_units=int(data["heldUnits"]),
            swept_units=int(data["sweptUnits"]),
            unswept_units=int(data["unsweptUnits"]),
            deposits=tuple(XpubDeposit.from_dict(d) for d in data.get("deposits") or ()),
            raw=_raw(data),
        )


@dataclass(frozen=True)
class XpubSweep:
    """Your sweep of an xpub address as the gateway recorded it (POST /v1/xpub/sweeps)."""

    network: str
    address: str
    txid: str
    units: int
    recorded_at: datetime

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> XpubSweep:
        return cls(
            network=data["network"],
            address=data["address"],
            txid=data["txid"],
            units=int(data["units"]),
            recorded_at=from_ms(data["recordedAt"]),
        )
