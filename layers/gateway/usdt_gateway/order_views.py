"""How an order reads in the API, the payment page and every order event: pure functions of the
order record and the network's head (for confirmations), with no DynamoDB access, so the write
path (transitions, events) builds its event data without importing the order read model.

The head comes from cursor.view_head, read by the caller once per view (once per write)."""

from __future__ import annotations

from usdt_gateway.config import settings
from usdt_gateway.http import request_base_url
from usdt_gateway.money import format_units
from usdt_gateway.networks import Network
from usdt_gateway.records import Order
from usdt_gateway.schemas import (
    DepositView,
    FundsLocation,
    OrderException,
    OrderStatus,
    OrderView,
    PublicDepositView,
    PublicOrderView,
)


def needs_head(order: Order) -> bool:
    """Only an order with deposits shows confirmations: the others need no head read."""
    return bool(order.deposits)


def payment_url(public_id: str) -> str:
    base = settings().public_base_url or request_base_url.get()
    return f"{base.rstrip('/')}/pay/{public_id}"


def deposit_views(order: Order, head: int | None) -> list[DepositView]:
    return [
        DepositView(
            txid=d.txid,
            log_index=d.log_index,
            amount=format_units(d.units, order.decimals),
            sender=d.sender,
            block_number=d.block_number,
            block_time=d.block_time,
            confirmations=max(0, head - d.block_number + 1) if head is not None else 0,
            final=d.final,
            reversed=d.reversed,
            held=d.held,
        )
        for d in sorted(order.deposits.values(), key=lambda d: (d.block_number, d.log_index))
    ]


def exceptions(order: Order) -> list[OrderException]:
    """The item keeps one `exception` (paid_late wins); an excess is overpaid whatever it says."""
    found = [OrderException.PAID_LATE] if order.exception == OrderException.PAID_LATE else []
    if order.excess_units > 0:
        found.append(OrderException.OVERPAID)
    return found


def funds(order: Order) -> FundsLocation | None:
    """Where a contract-mode order's money is; None in the other modes, or before any. Refunded
    once refunds sent back all that reached its address (and nothing credited since); swept once
    sweeps and refunds together took what was credited."""
    if order.deposit_salt is None:
        return None
    if order.refunded_all and order.refunded_paid_units >= order.paid_units:
        return FundsLocation.REFUNDED
    if order.paid_units <= 0:
        return None
    if order.sweeping_id is not None:
        return FundsLocation.SWEEPING
    if order.swept_units > 0 and order.swept_units + order.refunded_paid_units >= order.paid_units:
        return FundsLocation.SWEPT
    if order.missing_units and order.swept_units + order.missing_units + order.refunded_paid_units >= order.paid_units:
        return FundsLocation.MOVED_ELSEWHERE  # a sweep found (some of) it gone: not said to be swept
    return FundsLocation.ON_DEPOSIT_ADDRESS


def to_view(order: Order, head: int | None = None) -> OrderView:
    decimals = order.decimals
    return OrderView(
        order_id=order.order_id,
        public_id=order.public_id,
        network=order.network,
        chain_id=order.chain_id,
        token_contract=order.token_contract,
        amount=format_units(order.amount_units, decimals),
        requested_amount=format_units(order.requested_units, decimals),
        address=order.address,
        # Stored at creation: webhooks built by the scanner have no request to take a base URL from.
        payment_url=order.payment_url or payment_url(order.public_id),
        payment_uri=order.payment_uri,
        qr_code_data=order.qr_code_data or "",
        status=order.status,
        paid=order.status == OrderStatus.CONFIRMED,
        exception=order.exception,
        exceptions=exceptions(order),
        paid_amount=format_units(order.paid_units, decimals),
        pending_amount=format_units(order.seen_units, decimals),
        excess_amount=format_units(order.excess_units, decimals),
        txid=order.txid,
        confirmed_at=order.confirmed_at,
        expires_at=order.expires_at,
        created_at=order.created_at,
        notify_url=order.notify_url,
        return_url=order.return_url,
        metadata=order.metadata,
        deposits=deposit_views(order, head),
        funds=funds(order),
    )


def finality(network: Network | None) -> tuple[str, int | None]:
    """How a deposit becomes final on the network, as GET /v1/networks says it; the confirmations
    it needs when they are counted."""
    if network is None:  # disabled since the order was created: its chain's own finality
        return "finalized", None
    if network.finality.mode == "confirmations":
        return f"{network.finality.confirmations} confirmations", network.finality.confirmations
    return network.finality.mode, None


def public_deposits(order: Order, head: int | None) -> list[PublicDepositView]:
    return [
        PublicDepositView(
            txid=d.txid, amount=d.amount, block_time=d.block_time, confirmations=d.confirmations, final=d.final
        )
        for d in deposit_views(order, head)
        if not d.reversed
    ]


def public_view(
    public_id: str, order: Order, head: int | None, *, network: Network | None, server_time: int
) -> PublicOrderView:
    """What the payer's page shows (GET /v1/public/orders/{publicId}); `network` is None when it
    was disabled since the order was created."""
    decimals = order.decimals
    amount, paid, seen = order.amount_units, order.paid_units, order.seen_units
    mode, required = finality(network)
    return PublicOrderView(
        public_id=public_id,
        network=order.network,
        network_name=network.display_name if network else order.network,
        chain_id=order.chain_id,
        token_contract=order.token_contract,
        decimals=decimals,
        amount=format_units(amount, decimals),
        paid_amount=format_units(paid, decimals),
        pending_amount=format_units(seen, decimals),
        missing_amount=format_units(max(0, amount - paid - seen), decimals),
        excess_amount=format_units(order.excess_units, decimals),
        address=order.address,
        payment_uri=order.payment_uri,
        status=order.status,
        exception=order.exception,
        finality=mode,
        confirmations=required,
        deposits=public_deposits(order, head),
        confirmed_at=order.confirmed_at,
        expires_at=order.expires_at,
        server_time=server_time,
        return_url=order.return_url,
    )
