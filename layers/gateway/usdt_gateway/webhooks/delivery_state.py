"""What an EVENT item records about its delivery, and the conditional writes that move it.

deliveryStatus  pending -> delivered | failing | dead | disabled; failing -> (the same);
                any -> pending again on a resend
attempts        the last MAX_KEPT_ATTEMPTS attempts: n, at, url, statusCode, latencyMs, error, code
attemptCount    attempts made so far (numbering continues across resends)
retryBase       attemptCount at the latest resend: the retry schedule counts from there
nextAttemptAt   when the next attempt is due (ms), while pending or failing
queueMessageId  the SQS message in charge of the event; any other message for it is a duplicate
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from usdt_gateway import store
from usdt_gateway.schemas import DeliveryStatus
from usdt_gateway.webhooks.records import OWNER, Attempt, Delivery, DeliveryState

MAX_KEPT_ATTEMPTS = 50
_NAMES = {"#owner": OWNER, "#st": "deliveryStatus"}


def _kept(attempts: tuple[Attempt, ...], attempt: Attempt) -> list[dict[str, Any]]:
    return [a.to_item() for a in (*attempts, attempt)[-MAX_KEPT_ATTEMPTS:]]


def claim(event_id: str, message_id: str) -> Delivery | None:
    """Put this message in charge of the event; None when another is, or nothing is left to send."""
    pk, sk = store.event_key(event_id)
    # pending|failing with no message in charge -> this message in charge
    claimed = store.update(
        pk,
        sk,
        set_values={OWNER: message_id},
        condition="attribute_not_exists(#owner) AND #st IN (:pending, :failing)",
        names=_NAMES,
        values={":pending": DeliveryStatus.PENDING.value, ":failing": DeliveryStatus.FAILING.value},
    )
    return None if claimed is None else Delivery.from_item(claimed)


def hand_over(event_id: str, message_id: str, to_message_id: str) -> bool:
    """A deferral: the re-sent copy of the message takes charge."""
    pk, sk = store.event_key(event_id)
    # this message in charge -> its copy in charge (a resend meanwhile has put nobody in charge)
    return (
        store.update(
            pk,
            sk,
            set_values={OWNER: to_message_id},
            condition="#owner = :me",
            names={"#owner": OWNER},
            values={":me": message_id},
        )
        is not None
    )


def record(
    event: Delivery, message_id: str, attempt: Attempt, status: DeliveryStatus, next_attempt_at: int | None
) -> bool:
    """Record attempt n (= attemptCount + 1) and the status it leads to. False when this message is
    no longer in charge (a resend took over while it was sending): see record_attempt_only."""
    pk, sk = store.event_key(event.event_id)
    fields: dict[str, Any] = {
        "attempts": _kept(event.state.attempts, attempt),
        "attemptCount": attempt.n,
        "deliveryStatus": status.value,
        "nextAttemptAt": next_attempt_at,
        "lastAttemptAt": attempt.at,
    }
    if status == DeliveryStatus.DELIVERED:
        fields["deliveredAt"] = attempt.at + attempt.latency_ms
    # attempt n in flight, this message in charge -> attempt n recorded, delivered|failing|dead|disabled
    done = store.update(
        pk,
        sk,
        set_values=fields,
        condition="#owner = :me AND #count = :prev",
        names={"#owner": OWNER, "#count": "attemptCount"},
        values={":me": message_id, ":prev": attempt.n - 1},
    )
    return done is not None


def record_attempt_only(event_id: str, attempt: Attempt) -> Attempt:
    """Record an attempt made by a message no longer in charge, leaving the status to the one that
    is: every attempt shows in the log. Numbered after whatever was recorded meanwhile."""
    pk, sk = store.event_key(event_id)
    for _ in range(5):
        item = store.get(pk, sk)
        if item is None:
            break  # nothing to record it on
        current = DeliveryState.from_item(item)
        count = current.attempt_count
        entry = replace(attempt, n=count + 1)
        # attemptCount c -> c + 1, from the count read (a concurrent record moves it)
        if (
            store.update(
                pk,
                sk,
                set_values={
                    "attempts": _kept(current.attempts, entry),
                    "attemptCount": count + 1,
                    "lastAttemptAt": entry.at,
                },
                condition="#count = :prev",
                names={"#count": "attemptCount"},
                values={":prev": count},
            )
            is not None
        ):
            return entry
    raise RuntimeError(f"attempt on {event_id} could not be recorded")


def mark_disabled(event_id: str, message_id: str) -> None:
    pk, sk = store.event_key(event_id)
    # pending|failing, this message in charge -> disabled (its URL is disabled: no attempt made)
    store.update(
        pk,
        sk,
        set_values={"deliveryStatus": DeliveryStatus.DISABLED.value, "nextAttemptAt": None},
        condition="#owner = :me AND #st IN (:pending, :failing)",
        names=_NAMES,
        values={
            ":me": message_id,
            ":pending": DeliveryStatus.PENDING.value,
            ":failing": DeliveryStatus.FAILING.value,
        },
    )


def reopen_part(event_id: str, merchant_id: str, now_ms: int) -> dict[str, Any]:
    """A resend, inside the transaction that also hands the event to the outbox again."""
    pk, sk = store.event_key(event_id)
    # any status -> pending with nobody in charge (the new message takes charge); the retry
    # schedule starts over from the attempts made so far. Only the merchant's own event.
    return store.update_part(
        pk,
        sk,
        expression="SET #st = :pending, #next = :now, #base = #count REMOVE #owner",
        condition="#merchant = :merchant",
        names={
            **_NAMES,
            "#count": "attemptCount",
            "#next": "nextAttemptAt",
            "#base": "retryBase",
            "#merchant": "merchantId",
        },
        values={":pending": DeliveryStatus.PENDING.value, ":now": now_ms, ":merchant": merchant_id},
    )
