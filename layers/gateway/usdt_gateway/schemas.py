"""Request and response schemas of the HTTP API (the OpenAPI document is generated from these)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

OrderIdStr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.:]{1,64}$")]
MetaKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.]{1,40}$")]
# DynamoDB numbers hold at most 38 significant digits.
MetaInt = Annotated[int, Field(ge=-(10**38 - 1), le=10**38 - 1)]
MetaValue = Annotated[str, StringConstraints(max_length=256)] | MetaInt | bool | None


class OrderStatus(StrEnum):
    """See docs/order-states.md for the state machine."""

    PENDING = "pending"  # nothing received yet
    CONFIRMING = "confirming"  # a payment is seen on chain, not final yet
    UNDERPAID = "underpaid"  # final payments sum below the amount; open for a top-up until expiry
    CONFIRMED = "confirmed"  # paid in full (or within tolerance) and final
    EXPIRED = "expired"  # nothing final received by expiry
    CANCELLED = "cancelled"  # cancelled by the merchant before anything was received
    FAILED = "failed"  # closed unpaid after a partial payment that was never topped up


OPEN_STATUSES = frozenset({OrderStatus.PENDING, OrderStatus.CONFIRMING, OrderStatus.UNDERPAID})


class OrderException(StrEnum):
    OVERPAID = "overpaid"
    PAID_LATE = "paid_late"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CreateOrderRequest(Strict):
    network: str | None = Field(None, description="Network name from GET /v1/networks, e.g. `tron`, `eth`, `bsc`.")
    chain_id: StrictInt | None = Field(None, alias="chainId", description="Chain id, instead of `network`.")
    currency: Literal["USDT"]
    amount: str = Field(description="Decimal string, e.g. `50.00`; at most the token's decimals.")
    order_id: OrderIdStr = Field(alias="orderId", description="Your own order id, unique per merchant.")
    notify_url: str | None = Field(None, alias="notifyUrl", max_length=2048)
    return_url: str | None = Field(None, alias="returnUrl", max_length=2048)
    expires_in: StrictInt | None = Field(None, alias="expiresIn", description="Seconds until expiry (bounded).")
    metadata: dict[MetaKey, MetaValue] | None = Field(None, max_length=20, description="Small flat object.")


class DepositView(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    txid: str
    log_index: int = Field(alias="logIndex")
    amount: str
    sender: str
    block_number: int = Field(alias="blockNumber")
    block_time: int = Field(alias="blockTime", description="Block timestamp, ms since the epoch.")
    confirmations: int = Field(description="Blocks on top of and including the deposit's block, at the last scan.")
    final: bool = Field(description="Final under the network's policy, and counted in `paidAmount`.")


class DepositRecordView(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    deposit_id: str = Field(alias="depositId", description="`<network>:<txid>:<logIndex>`")
    network: str
    txid: str
    log_index: int = Field(alias="logIndex")
    block_number: int = Field(alias="blockNumber")
    block_time: int = Field(alias="blockTime")
    sender: str
    recipient: str
    amount: str
    unmatched: bool = Field(description="No order took it; attach it with POST /v1/deposits/{depositId}/attach.")
    order_id: str | None = Field(None, alias="orderId")


class DepositListView(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    deposits: list[DepositRecordView]
    next_cursor: str | None = Field(None, alias="nextCursor")


class AttachDepositRequest(Strict):
    order_id: OrderIdStr = Field(alias="orderId", description="The order to credit the deposit to.")


class OrderView(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    order_id: str = Field(alias="orderId")
    public_id: str = Field(alias="publicId")
    network: str
    chain_id: int = Field(alias="chainId")
    currency: Literal["USDT"] = "USDT"
    token_contract: str = Field(alias="tokenContract")
    amount: str = Field(description="The exact amount the customer must send.")
    requested_amount: str = Field(alias="requestedAmount", description="The amount asked for at creation.")
    address: str
    payment_url: str = Field(alias="paymentUrl")
    payment_uri: str = Field(alias="paymentUri")
    qr_code_data: str = Field(alias="qrCodeData", description="PNG data URI of a QR code of `paymentUri`.")
    status: OrderStatus
    exception: OrderException | None = None
    paid_amount: str = Field(alias="paidAmount", description="Sum of final deposits.")
    pending_amount: str = Field(alias="pendingAmount", description="Sum of deposits seen but not final yet.")
    excess_amount: str = Field(alias="excessAmount", description="Paid beyond the amount (overpaid).")
    txid: str | None = None
    confirmed_at: int | None = Field(None, alias="confirmedAt")
    expires_at: int = Field(alias="expiresAt", description="Milliseconds since the epoch.")
    created_at: int = Field(alias="createdAt")
    notify_url: str | None = Field(None, alias="notifyUrl")
    return_url: str | None = Field(None, alias="returnUrl")
    metadata: dict[str, str | int | bool | None] | None = None
    deposits: list[DepositView] = []


class OrderListView(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    orders: list[OrderView]
    next_cursor: str | None = Field(None, alias="nextCursor")


class PublicOrderView(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    public_id: str = Field(alias="publicId")
    network: str
    network_name: str = Field(alias="networkName")
    chain_id: int = Field(alias="chainId")
    currency: Literal["USDT"] = "USDT"
    token_contract: str = Field(alias="tokenContract")
    decimals: int
    amount: str
    paid_amount: str = Field(alias="paidAmount")
    address: str
    payment_uri: str = Field(alias="paymentUri")
    status: OrderStatus
    expires_at: int = Field(alias="expiresAt")
    return_url: str | None = Field(None, alias="returnUrl")


class NetworkView(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    network: str
    name: str
    family: Literal["evm", "tron"]
    chain_id: int = Field(alias="chainId")
    currency: Literal["USDT"] = "USDT"
    token_contract: str = Field(alias="tokenContract")
    decimals: int
    finality: str = Field(description="`finalized`, `solidified` or `N confirmations`.")
    confirmations: int | None
    min_amount: str = Field(alias="minAmount")
    max_amount: str = Field(alias="maxAmount")
    testnet: bool


class NetworkListView(BaseModel):
    networks: list[NetworkView]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="What is wrong and how to fix it.")
