"""The delivery log a merchant reads (GET /v1/webhooks/deliveries) and the resend of an event
(POST /v1/webhooks/deliveries/{deliveryId}/resend): one entry per event, with its attempts."""

from __future__ import annotations

from usdt_gateway import clock, events, merchants, outbox, path_ids, store
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.schemas import DeliveryAttemptView, DeliveryListView, DeliveryStatus, DeliveryView
from usdt_gateway.webhooks import delivery_state, endpoints
from usdt_gateway.webhooks.records import Delivery


def to_view(delivery: Delivery) -> DeliveryView:
    return DeliveryView(
        delivery_id=delivery.event_id,
        type=delivery.type,
        order_id=delivery.order_id,
        created_at=delivery.created_at,
        status=delivery.state.status,
        attempts=[
            DeliveryAttemptView(
                n=a.n,
                at=a.at,
                url=a.url,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
            )
            for a in delivery.state.attempts
        ],
        next_attempt_at=delivery.state.next_attempt_at,
    )


def list_deliveries(
    merchant_id: str,
    *,
    order_id: str | None,
    event_type: str | None,
    outcome: DeliveryStatus | None,
    limit: int,
    cursor: str | None,
) -> DeliveryListView:
    """Newest first; the filters are equality filters on the merchant's events index."""
    filters = {"orderId": order_id, "type": event_type, "deliveryStatus": outcome.value if outcome else None}
    items, next_cursor = store.query_index(
        store.events_index_pk(merchant_id),
        sk_from="0",
        sk_to="~",
        limit=limit,
        cursor=cursor,
        filters={k: v for k, v in filters.items() if v} or None,
    )
    return DeliveryListView(deliveries=[to_view(Delivery.from_item(i)) for i in items], next_cursor=next_cursor)


def _own_event(merchant_id: str, delivery_id: str) -> Delivery:
    item = store.get(*store.event_key(path_ids.delivery_id(delivery_id)))
    event = None if item is None else Delivery.from_item(item)
    if event is None or event.merchant_id != merchant_id:
        raise NotFound(f"no delivery '{delivery_id}'", code="DELIVERY_NOT_FOUND")
    return event


def resend(merchant_id: str, delivery_id: str) -> DeliveryView:
    """The event again, now: same id and body, attempts numbered on. Handed to the outbox in one
    transaction with its status, so a failure to reach SQS leaves it to the sweeper."""
    event = _own_event(merchant_id, delivery_id)
    profile = merchants.get_merchant(merchant_id)
    url = endpoints.target_url(profile, event)
    if url is None:
        raise InvalidRequest(
            "no webhook URL is configured: set one with PUT /v1/webhooks/endpoint", code="WEBHOOK_URL_REQUIRED"
        )
    if endpoints.is_disabled(profile, url):
        raise Conflict(
            f"{url} is disabled: re-enable it with PUT /v1/webhooks/endpoint, then resend", code="WEBHOOK_URL_DISABLED"
        )
    now = clock.now_ms()
    marker = events.outbox_marker(
        delivery_id, now, event.sequence, merchant_id=event.merchant_id, order_id=event.order_id
    )
    # none (or this event's marker, not handed over yet) -> this event's marker
    put_marker = store.put_part(
        marker, condition="attribute_not_exists(pk) OR eventId = :e", values={":e": delivery_id}
    )
    try:
        store.transact([delivery_state.reopen_part(delivery_id, merchant_id, now), put_marker])
    except store.TransactionConflict as exc:
        raise Conflict("the delivery changed while it was being resent; retry", code="RESEND_CONFLICT") from exc
    outbox.publish([delivery_id])
    resent = store.get(*store.event_key(delivery_id))
    return to_view(event if resent is None else Delivery.from_item(resent))
