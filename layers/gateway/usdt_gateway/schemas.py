"""Request and response schemas of the HTTP API (the OpenAPI document is generated from these)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

from usdt_gateway.money import AMOUNT_PATTERN, MAX_AMOUNT_CHARS

ORDER_ID_PATTERN = r"^[A-Za-z0-9_\-.:]{1,64}$"
NEXT_CURSOR = (
    "Pass it as `cursor` for the next page; null: this is the last page. A page may hold fewer items "
    "than `limit` (a filter reads a bounded stretch per request) and still have one."
)
OrderIdStr = Annotated[str, StringConstraints(pattern=ORDER_ID_PATTERN)]
MetaKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.]{1,40}$")]
# DynamoDB numbers hold at most 38 significant digits.
META_INT_MAX = 10**38 - 1


def _integral(value: object) -> object:
    """A JSON number written with a fraction or an exponent (2.0, 1e2) is an integer to JSON Schema,
    as the document says: it is taken as that int when it has no fractional part and fits. The bound
    is checked on the Decimal first: converting 1e999999999 to an int would take minutes."""
    bounded = isinstance(value, Decimal) and value.is_finite() and -META_INT_MAX <= value <= META_INT_MAX
    if bounded and isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


MetaInt = Annotated[StrictInt, Field(ge=-META_INT_MAX, le=META_INT_MAX), BeforeValidator(_integral)]
MetaValue = Annotated[str, StringConstraints(max_length=256)] | MetaInt | StrictBool | None  # 1.0 is no True
# additionalProperties false: the document says what validation does, a key outside the pattern is refused.
Metadata = Annotated[dict[MetaKey, MetaValue], Field(max_length=20, json_schema_extra={"additionalProperties": False})]


class OrderStatus(StrEnum):
    """See docs/order-states.md for the state machine."""

    PENDING = "pending"  # nothing received yet
    CONFIRMING = "confirming"  # a payment is seen on chain, not final yet
    UNDERPAID = "underpaid"  # final payments sum below the amount; open for a top-up until expiry
    CONFIRMED = "confirmed"  # paid in full (or within tolerance) and final
    EXPIRED = "expired"  # nothing final received by expiry
    CANCELLED = "cancelled"  # cancelled by the merchant before anything was received
    FAILED = "failed"  # closed unpaid after a partial payment that was never topped up


class FundsLocation(StrEnum):
    """Where a contract-mode order's money is (docs/settlement.md)."""

    ON_DEPOSIT_ADDRESS = "on_deposit_address"  # credited, on the order's deposit contract address
    SWEEPING = "sweeping"  # a sweep to the merchant's treasury carries it now
    SWEPT = "swept"  # in the merchant's treasury (what refunds did not send back)
    REFUNDED = "refunded"  # all of it sent back by refunds the owner signed
    # A sweep found (some of) it gone from the deposit address: it left by a path the gateway did
    # not take (someone else's sweep, which pays the treasury too, or a refund sent directly).
    MOVED_ELSEWHERE = "moved_elsewhere"


class RefundStatus(StrEnum):
    """Where a refund stands (docs/settlement.md, Refunds)."""

    AWAITING_SIGNATURE = "awaiting_signature"  # the owner's signature of `typedData` is awaited
    SUBMITTED = "submitted"  # signed; the relayer sends it and carries it to finality
    COMPLETED = "completed"  # final on chain: the money reached `to`
    FAILED = "failed"  # it did not run and no longer can (`reason`)
    EXPIRED = "expired"  # no signature came by its deadline


class OrderException(StrEnum):
    OVERPAID = "overpaid"
    PAID_LATE = "paid_late"


class Model(BaseModel):
    # Validators and serializers are built on a model's first use, not at import: a cold start
    # builds those of the route it serves, not the other routes' (docs/benchmarks.md).
    model_config = ConfigDict(defer_build=True)


class Strict(Model):
    # Fields by their documented (alias) names only: `order_id` is an unknown field, as the
    # OpenAPI document says, not a second spelling of `orderId`.
    model_config = ConfigDict(extra="forbid")


# The handler passes an amount sent as a JSON number on as its text (api/app.py), under the
# same rule as a string; the document says both forms.
AMOUNT_DESCRIPTION = (
    'A decimal in plain notation, as a string (`"50.00"`) or a JSON number (`50.00`, read from '
    "its text, never as a float): digits and at most one point; no sign, exponent (`1E2`, "
    "`1.0e1`), separators or leading zeros; greater than zero, at most the token's decimals "
    "(6; 18 on BSC) and within the network's bounds."
)
AmountInput = Annotated[
    str,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN, "maxLength": MAX_AMOUNT_CHARS},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": AMOUNT_DESCRIPTION,
        }
    ),
]


class CreateOrderRequest(Strict):
    network: str | None = Field(None, description="Network name from GET /v1/networks, e.g. `tron`, `eth`, `bsc`.")
    chain_id: StrictInt | None = Field(None, alias="chainId", description="Chain id, instead of `network`.")
    currency: Literal["USDT"]
    amount: AmountInput
    order_id: OrderIdStr = Field(alias="orderId", description="Your own order id, unique per merchant.")
    notify_url: str | None = Field(
        None,
        alias="notifyUrl",
        max_length=2048,
        description="Where this order's webhooks go instead of your default URL: https, a host name or IP "
        "literal resolving only to public addresses, port 443 (docs/webhooks.md).",
    )
    return_url: str | None = Field(
        None,
        alias="returnUrl",
        max_length=2048,
        description="Where the payment page leads the payer back to: an absolute https URL whose host is a "
        "host name or an IP literal (RFC 3986).",
    )
    expires_in: StrictInt | None = Field(None, alias="expiresIn", description="Seconds until expiry (bounded).")
    metadata: Metadata | None = Field(None, description="Small flat object.")


class DepositView(Model):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    txid: str
    log_index: int = Field(
        alias="logIndex",
        description="The Transfer log's position among its transaction's logs "
        "(0 for the first): with the txid, what identifies a "
        "deposit in whichever block a reorg puts it.",
    )
    amount: str
    sender: str
    block_number: int = Field(alias="blockNumber")
    block_time: int = Field(alias="blockTime", description="Block timestamp, ms since the epoch.")
    confirmations: int = Field(description="Blocks on top of and including the deposit's block, at the last scan.")
    final: bool = Field(description="Final under the network's policy, and counted in `paidAmount`.")
    reversed: bool = Field(
        False,
        description="Was final, then a reorg deeper than the network's finality removed "
        "it: no longer counted in `paidAmount`.",
    )
    held: bool = Field(
        False,
        description="Held until a second RPC endpoint or the operator confirms it (it may be "
        "forged): pending while the order is open, counted for nothing once it has expired. "
        "A `deposit.held` event told you; `deposit.released` or `deposit.rejected` ends it.",
    )


class DepositRecordView(Model):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    deposit_id: str = Field(
        alias="depositId", description="`<network>:<txid>:<logIndex>`, `logIndex` counted within the transaction"
    )
    network: str
    txid: str
    log_index: int = Field(
        alias="logIndex",
        description="The Transfer log's position among its transaction's logs "
        "(0 for the first): with the txid, what identifies a "
        "deposit in whichever block a reorg puts it.",
    )
    block_number: int = Field(alias="blockNumber")
    block_time: int = Field(alias="blockTime")
    sender: str
    recipient: str
    amount: str
    unmatched: bool = Field(description="No order took it; attach it with POST /v1/deposits/{depositId}/attach.")
    status: Literal["credited", "unmatched", "ignored", "reversed", "disputed", "unverified", "rejected"] = Field(
        description="`credited` to `orderId`; `unmatched`: no order took it; `ignored`: below the network's "
        "minimum deposit, counted nowhere; `reversed`: a reorg removed it after it was final; `disputed`: held, "
        "not counted: a second RPC endpoint contradicts it (the operator is alerted); `unverified`: held, not "
        "counted, until a second source or the operator confirms it. A held deposit that is confirmed later is "
        "credited to `orderId` then (or, past the order's late-payment grace window, recorded `unmatched`); "
        "`rejected`: a held deposit the operator found on no explorer: never counted."
    )
    reason: (
        Literal["below_minimum", "reorg", "second_source_disagrees", "awaiting_second_source", "not_on_chain"] | None
    ) = Field(
        None,
        description="Why it is `ignored` (`below_minimum`), `reversed` (`reorg`), `disputed` "
        "(`second_source_disagrees`), `unverified` (`awaiting_second_source`) or `rejected` (`not_on_chain`).",
    )
    order_id: str | None = Field(None, alias="orderId")


class DepositListView(Model):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    deposits: list[DepositRecordView]
    next_cursor: str | None = Field(None, alias="nextCursor", description=NEXT_CURSOR)


class AttachDepositRequest(Strict):
    order_id: OrderIdStr = Field(alias="orderId", description="The order to credit the deposit to.")


class OrderView(Model):
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
    paid: bool = Field(description="Paid in full and final: true exactly when `status` is `confirmed`. Ship on this.")
    exception: OrderException | None = Field(None, description="The first of `exceptions` (`paid_late` wins).")
    exceptions: list[OrderException] = Field(
        default=[],
        description="Every exception of a confirmed order: `paid_late`, then `overpaid`; a late overpayment has both.",
    )
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
    funds: FundsLocation | None = Field(
        None,
        description="Contract mode only, once a final deposit is credited (or a refund completed): where "
        "the order's money is. `on_deposit_address` until a sweep or a refund takes it, `sweeping` while "
        "a sweep carries it to the merchant's treasury, `swept` once the final sweeps and refunds cover "
        "what was credited, `refunded` once completed refunds cover all the money that reached the "
        "deposit address (none of it was swept), `moved_elsewhere` when a sweep found it gone from the "
        "address (moved by a path the gateway did not take: someone else's sweep, which pays the "
        "treasury too, or a refund sent directly). Null in xpub and fixed-address modes (the money is in "
        "the merchant's own wallet).",
    )


class OrderListView(Model):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    orders: list[OrderView]
    next_cursor: str | None = Field(None, alias="nextCursor", description=NEXT_CURSOR)


class PublicDepositView(Model):
    """A payment to the order's address as the payer's page shows it (what the chain shows anyway)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    txid: str
    amount: str
    block_time: int = Field(alias="blockTime", description="Block timestamp, ms since the epoch.")
    confirmations: int = Field(description="Blocks on top of and including the deposit's block, at the last scan.")
    final: bool = Field(description="Final under the network's policy, and counted in `paidAmount`.")


class PublicOrderView(Model):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    public_id: str = Field(alias="publicId")
    network: str
    network_name: str = Field(alias="networkName")
    chain_id: int = Field(alias="chainId")
    currency: Literal["USDT"] = "USDT"
    token_contract: str = Field(alias="tokenContract")
    decimals: int
    amount: str = Field(description="The exact amount to send.")
    paid_amount: str = Field(alias="paidAmount", description="Sum of final deposits.")
    pending_amount: str = Field(alias="pendingAmount", description="Sum of deposits seen but not final yet.")
    missing_amount: str = Field(
        alias="missingAmount", description="Still to send: the amount minus every deposit seen or final, at least 0."
    )
    excess_amount: str = Field(alias="excessAmount", description="Paid beyond the amount (overpaid).")
    address: str
    payment_uri: str = Field(alias="paymentUri")
    status: OrderStatus
    exception: OrderException | None = None
    finality: str = Field(description="`finalized`, `solidified` or `N confirmations`: when a deposit is final.")
    confirmations: int | None = Field(
        description="Confirmations a deposit needs to be final; null when the "
        "chain's finalized (or solidified) block decides."
    )
    deposits: list[PublicDepositView] = []
    confirmed_at: int | None = Field(None, alias="confirmedAt", description="When it was paid, ms since the epoch.")
    expires_at: int = Field(alias="expiresAt", description="Milliseconds since the epoch.")
    server_time: int = Field(
        alias="serverTime", description="The gateway's clock at this answer (ms): count down to `expiresAt` from it."
    )
    return_url: str | None = Field(None, alias="returnUrl")


class NetworkView(Model):
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


class NetworkListView(Model):
    networks: list[NetworkView]


class DeliveryStatus(StrEnum):
    """Where a webhook event's delivery stands (docs/webhooks.md)."""

    PENDING = "pending"  # queued, not attempted yet (or sent again by a resend)
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILING = "failing"  # attempts failed, another is scheduled (nextAttemptAt)
    DEAD = "dead"  # every attempt failed: in the dead-letter queue; resend sends it again
    DISABLED = "disabled"  # its URL is disabled (after a 410): not sent; resend once re-enabled


class View(Model):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class DeliveryAttemptView(View):
    n: int = Field(description="1 for the first attempt; numbering continues across resends.")
    at: int = Field(description="When the attempt started, ms since the epoch.")
    url: str | None = Field(description="Where it was sent (null: no URL was configured).")
    status_code: int | None = Field(alias="statusCode", description="The receiver's HTTP status, if it answered.")
    latency_ms: int = Field(alias="latencyMs")
    error: str | None = Field(description="Why the attempt failed; null for a 2xx.")


class DeliveryView(View):
    delivery_id: str = Field(alias="deliveryId", description="The event id (`webhook-id`, `id` in the body).")
    type: str
    order_id: str | None = Field(alias="orderId")
    created_at: int = Field(alias="createdAt")
    status: DeliveryStatus
    attempts: list[DeliveryAttemptView]
    next_attempt_at: int | None = Field(alias="nextAttemptAt", description="When the next attempt is due.")


class DeliveryListView(View):
    deliveries: list[DeliveryView]
    next_cursor: str | None = Field(None, alias="nextCursor", description=NEXT_CURSOR)


class WebhookTestRequest(Strict):
    url: str | None = Field(
        None,
        max_length=2048,
        description="Where to send it (checked as your webhook URL is); default: your webhook URL.",
    )


class WebhookTestResult(View):
    delivery_id: str = Field(alias="deliveryId")
    url: str
    ok: bool = Field(description="The receiver answered 2xx.")
    status_code: int | None = Field(alias="statusCode")
    latency_ms: int = Field(alias="latencyMs")
    error: str | None


class DisabledUrlView(View):
    url: str
    disabled_at: int = Field(alias="disabledAt")
    reason: str


class SecretRotationView(View):
    previous_valid_until: int = Field(
        alias="previousValidUntil", description="Until then (ms) the previous secret signs too."
    )


class WebhookEndpointView(View):
    url: str | None = Field(description="Your default webhook URL (an order's notifyUrl takes precedence).")
    enabled: bool = Field(description="A default URL is set and not disabled.")
    disabled_urls: list[DisabledUrlView] = Field(
        alias="disabledUrls", description="URLs nothing is sent to until re-enabled."
    )
    secret_rotation: SecretRotationView | None = Field(alias="secretRotation")


class WebhookEndpointUpdate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})  # {} changes nothing: a 400
    url: str | None = Field(
        None,
        max_length=2048,
        description="The new default URL (https, public addresses only, port 443); null removes it.",
    )
    enabled: StrictBool | None = Field(None, description="`true` re-enables the default URL, `false` disables it.")
    enable_urls: list[Annotated[str, StringConstraints(max_length=2048)]] | None = Field(
        None, alias="enableUrls", max_length=20, description="Other disabled URLs to re-enable (e.g. a notifyUrl)."
    )


class ErrorBody(Model):
    code: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="What is wrong and how to fix it.")


class SettlementView(Model):
    """A sweep of a merchant's deposit addresses to its treasury (contract mode), as the
    settlement.completed and settlement.failed events carry it and GET /v1/settlements lists it."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    settlement_id: str = Field(alias="settlementId")
    network: str
    status: Literal["completed", "failed"]
    factory: str
    token_contract: str = Field(alias="tokenContract")
    amount: str = Field(description="The covered deposits' sum, in USDT (unmatched ones included).")
    orders: list[str] = Field(description="The orderIds whose deposits the sweep covers.")
    deposits: list[str] = Field(description="The depositIds it covers.")
    tx_hash: str | None = Field(None, alias="txHash", description="The mined sweep transaction; null if none was.")
    gas_paid: str = Field(alias="gasPaid", description="Wei the relayer paid for it, as a decimal string.")
    reason: str | None = Field(None, description="Why it failed.")
    created_at: int = Field(alias="createdAt")
    closed_at: int = Field(alias="closedAt")


class SettlementListView(Model):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    settlements: list[SettlementView]
    next_cursor: str | None = Field(None, alias="nextCursor", description=NEXT_CURSOR)


REFUND_ADDRESS_PATTERN = r"^(0x[0-9a-fA-F]{40}|T[1-9A-HJ-NP-Za-km-z]{33})$"


class RefundRequest(Strict):
    to: str = Field(
        pattern=REFUND_ADDRESS_PATTERN,
        description="Who receives the refund, not the zero address: for an order on an EVM network an EVM "
        "address (mixed case must be a valid EIP-55 checksum), on Tron a base58 address (`T...`).",
    )
    amount: AmountInput | None = Field(
        None, description="How much to refund (default: all that is refundable). " + AMOUNT_DESCRIPTION
    )


class RefundSignatureRequest(Strict):
    signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]{130}$",
        description="The owner's signature of the refund's `typedData` (or of its `digest`): r ‖ s ‖ v, "
        "v 27 or 28 (0 or 1 are taken as 27 or 28), low s.",
    )


class TypedDataField(View):
    name: str
    type: str


class RefundTypes(View):
    eip712_domain: list[TypedDataField] = Field(alias="EIP712Domain")
    refund: list[TypedDataField] = Field(alias="Refund")


class RefundDomain(View):
    name: Literal["USDT Gateway Deposits"]
    version: Literal["1"]
    chain_id: int = Field(alias="chainId")
    verifying_contract: str = Field(alias="verifyingContract", description="The factory.")


class RefundTypedMessage(View):
    token: str
    salt: str = Field(description="The deposit address's CREATE2 salt, 0x and 64 hex digits.")
    to: str
    amount: str = Field(description="Base units, as a decimal string.")
    nonce: str = Field(description="A decimal string: any number the factory has not used.")
    deadline: int = Field(description="Unix seconds: the signature is void after it.")


class RefundTypedData(View):
    """The EIP-712 typed data the owner signs, exactly as eth_signTypedData_v4 takes it."""

    types: RefundTypes
    primary_type: Literal["Refund"] = Field(alias="primaryType")
    domain: RefundDomain
    message: RefundTypedMessage


class RefundView(View):
    """A refund of an order's money from its deposit address (contract mode). The refund.completed
    and refund.failed events carry it without `typedData`."""

    refund_id: str = Field(alias="refundId")
    order_id: str = Field(alias="orderId")
    network: str
    status: RefundStatus
    to: str = Field(description="The recipient: lowercase 0x hex on EVM networks, base58 (`T...`) on Tron.")
    amount: str = Field(description="In USDT, like order amounts.")
    deposit_address: str = Field(
        alias="depositAddress", description="Where the money is sent from (lowercase hex; base58 on Tron)."
    )
    factory: str
    token_contract: str = Field(alias="tokenContract")
    owner: str = Field(description="The factory's owner: the address whose signature is required.")
    deadline: int = Field(description="Unix seconds: the signature is void after it.")
    digest: str = Field(description="The EIP-712 digest of `typedData`, for signers of raw digests (a KMS key).")
    typed_data: RefundTypedData = Field(alias="typedData")
    tx_hash: str | None = Field(alias="txHash", description="The transaction that ran it (or reverted).")
    gas_paid: str | None = Field(
        alias="gasPaid", description="Wei the relayer paid for that transaction, as a decimal string."
    )
    reason: str | None = Field(description="Why it failed.")
    created_at: int = Field(alias="createdAt")
    updated_at: int = Field(alias="updatedAt")


class RefundListView(View):
    items: list[RefundView] = Field(description="Newest first.")


UNITS_DESCRIPTION = "Base units of the token, as a decimal string."


class XpubDepositView(View):
    deposit_id: str = Field(alias="depositId")
    txid: str
    log_index: int = Field(alias="logIndex")
    block_number: int = Field(alias="blockNumber")
    units: str = Field(description=UNITS_DESCRIPTION)
    status: Literal["credited", "unmatched"] = Field(description="`unmatched`: final money no order took.")
    order_id: str | None = Field(None, alias="orderId")


class XpubAddressView(View):
    """One of your xpub deposit addresses holding final money not recorded as swept (xpub mode:
    you hold its key, and sweep it with your own tool)."""

    network: str
    chain_id: int = Field(alias="chainId")
    token_contract: str = Field(alias="tokenContract")
    decimals: int
    address: str
    index: int = Field(description="Its derivation index i: the key is m/44'/coin'/account'/0/i of your wallet.")
    held_units: str = Field(alias="heldUnits", description="Its final deposits' sum. " + UNITS_DESCRIPTION)
    swept_units: str = Field(alias="sweptUnits", description="What recorded sweeps took. " + UNITS_DESCRIPTION)
    unswept_units: str = Field(alias="unsweptUnits", description="heldUnits - sweptUnits. " + UNITS_DESCRIPTION)
    deposits: list[XpubDepositView] = Field(description="Its final deposits (credited or unmatched), oldest first.")


class XpubAddressListView(View):
    addresses: list[XpubAddressView] = Field(description="By network, then derivation index.")


class XpubSweepRequest(Strict):
    network: str = Field(description="Network name from GET /v1/networks.")
    address: str = Field(max_length=64, description="The swept xpub deposit address.")
    txid: str = Field(max_length=80, description="The token transfer that swept it (EVM: 0x and 64 hex digits).")
    units: str = Field(
        pattern=r"^[1-9][0-9]{0,37}$", description="What the transfer moved, in base units, as a decimal string."
    )


class XpubSweepView(View):
    network: str
    address: str
    txid: str
    units: str = Field(description=UNITS_DESCRIPTION)
    recorded_at: int = Field(alias="recordedAt")
