"""A webhook delivery, typed: what an EVENT item (store.event_key) records about the sending of
its event. The item itself is created by `events`; its delivery attributes (delivery_state)
are read here by `from_item` and written back by `to_item` (None attributes are left out by
store.put*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from usdt_gateway.schemas import DeliveryStatus

if TYPE_CHECKING:  # the API reads deliveries; only the sender needs the HTTP client (ssl, http.client)
    from usdt_gateway.webhooks.delivery_http import Outcome

# The SQS message in charge of the event; any other message for it is a duplicate.
OWNER = "queueMessageId"


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Attempt:
    """One POST to the receiver, as kept in the item's attempts list."""

    n: int
    at: int  # when it started (ms)
    url: str | None
    status_code: int | None  # None: no HTTP answer (see error)
    latency_ms: int
    error: str | None  # None only for a 2xx
    code: str | None  # the error's stable code

    @classmethod
    def of(cls, n: int, at_ms: int, url: str | None, outcome: Outcome) -> Attempt:
        return cls(n, at_ms, url, outcome.status, outcome.latency_ms, outcome.error, outcome.code)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Attempt:
        return cls(
            n=int(item["n"]),
            at=int(item["at"]),
            url=item.get("url"),
            status_code=_opt_int(item.get("statusCode")),
            latency_ms=int(item.get("latencyMs") or 0),
            error=item.get("error"),
            code=item.get("code"),
        )

    def to_item(self) -> dict[str, Any]:
        # Every key, None too: inside a list entry a None is stored (as NULL), not left out.
        return {
            "n": self.n,
            "at": self.at,
            "url": self.url,
            "statusCode": self.status_code,
            "latencyMs": self.latency_ms,
            "error": self.error,
            "code": self.code,
        }


@dataclass(frozen=True)
class DeliveryState:
    """The delivery attributes of an EVENT item (see delivery_state for how they move)."""

    status: DeliveryStatus
    attempt_count: int = 0  # attempts made so far (numbering continues across resends)
    attempts: tuple[Attempt, ...] = ()  # the last delivery_state.MAX_KEPT_ATTEMPTS of them
    retry_base: int = 0  # attempt_count at the latest resend: the retry schedule counts from there
    next_attempt_at: int | None = None  # while pending or failing
    last_attempt_at: int | None = None
    delivered_at: int | None = None
    owner: str | None = None  # the SQS message in charge (OWNER)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DeliveryState:
        return cls(
            status=DeliveryStatus(item["deliveryStatus"]),
            attempt_count=int(item.get("attemptCount") or 0),
            attempts=tuple(Attempt.from_item(a) for a in item.get("attempts") or ()),
            retry_base=int(item.get("retryBase") or 0),
            next_attempt_at=_opt_int(item.get("nextAttemptAt")),
            last_attempt_at=_opt_int(item.get("lastAttemptAt")),
            delivered_at=_opt_int(item.get("deliveredAt")),
            owner=item.get(OWNER),
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "deliveryStatus": self.status.value,
            "attempts": [a.to_item() for a in self.attempts],
            "attemptCount": self.attempt_count,
            "retryBase": self.retry_base or None,  # set by the first resend; none counts from 0
            "nextAttemptAt": self.next_attempt_at,
            "lastAttemptAt": self.last_attempt_at,
            "deliveredAt": self.delivered_at,
            OWNER: self.owner,
        }


@dataclass(frozen=True)
class Delivery:
    """An event as its delivery sees it: what to send, where, and how far its sending is."""

    event_id: str
    type: str
    merchant_id: str
    order_id: str | None  # None for an event of no order (webhook.test)
    notify_url: str | None  # the order's own URL, else the merchant's default applies
    sequence: int
    created_at: int
    body: str  # the signed JSON, sent unchanged on every attempt
    state: DeliveryState

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Delivery:
        return cls(
            event_id=item["eventId"],
            type=item["type"],
            merchant_id=item["merchantId"],
            order_id=item.get("orderId"),
            notify_url=item.get("notifyUrl") or None,
            sequence=int(item["sequence"]),
            created_at=int(item["createdAt"]),
            body=str(item["body"]),
            state=DeliveryState.from_item(item),
        )
