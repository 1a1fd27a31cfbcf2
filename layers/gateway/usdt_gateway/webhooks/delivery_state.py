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

from typing import TYPE_CHECKING, Any

from usdt_gateway import store
from usdt_gateway.schemas import DeliveryStatus

if TYPE_CHECKING:  # the API reads delivery state; only the sender needs the HTTP client (ssl, http.client)
    from usdt_gateway.webhooks.delivery_http import Outcome

Item = dict[str, Any]
S = DeliveryStatus
OWNER = "queueMessageId"
MAX_KEPT_ATTEMPTS = 50
_NAMES = {"#owner": OWNER, "#st": "deliveryStatus"}


def attempt_entry(n: int, at_ms: int, url: str | None, outcome: Outcome) -> Item:
    return {
        "n": n,
        "at": at_ms,
        "url": url,
        "statusCode": outcome.status,
        "latencyMs": outcome.latency_ms,
        "error": outcome.error,
        "code": outcome.code,
    }


def claim(event_id: str, message_id: str) -> Item | None:
    """Put this message in charge of the event; None when another is, or nothing is left to send."""
    pk, sk = store.event_key(event_id)
    # pending|failing with no message in charge -> this message in charge
    return store.update(
        pk,
        sk,
        set_values={OWNER: message_id},
        condition="attribute_not_exists(#owner) AND #st IN (:pending, :failing)",
        names=_NAMES,
        values={":pending": S.PENDING.value, ":failing": S.FAILING.value},
    )


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


def record(event: Item, message_id: str, attempt: Item, status: S, next_attempt_at: int | None) -> bool:
    """Record attempt n (= attemptCount + 1) and the status it leads to. False when this message is
    no longer in charge (a resend took over while it was sending): see record_attempt_only."""
    pk, sk = store.event_key(event["eventId"])
    fields: Item = {
        "attempts": [*(event.get("attempts") or []), attempt][-MAX_KEPT_ATTEMPTS:],
        "attemptCount": attempt["n"],
        "deliveryStatus": status.value,
        "nextAttemptAt": next_attempt_at,
        "lastAttemptAt": attempt["at"],
    }
    if status == S.DELIVERED:
        fields["deliveredAt"] = attempt["at"] + int(attempt["latencyMs"])
    # attempt n in flight, this message in charge -> attempt n recorded, delivered|failing|dead|disabled
    done = store.update(
        pk,
        sk,
        set_values=fields,
        condition="#owner = :me AND #count = :prev",
        names={"#owner": OWNER, "#count": "attemptCount"},
        values={":me": message_id, ":prev": attempt["n"] - 1},
    )
    return done is not None


def record_attempt_only(event_id: str, attempt: Item) -> Item:
    """Record an attempt made by a message no longer in charge, leaving the status to the one that
    is: every attempt shows in the log. Numbered after whatever was recorded meanwhile."""
    pk, sk = store.event_key(event_id)
    for _ in range(5):
        current = store.get(pk, sk) or {}
        count = int(current.get("attemptCount") or 0)
        entry = {**attempt, "n": count + 1}
        # attemptCount c -> c + 1, from the count read (a concurrent record moves it)
        if (
            store.update(
                pk,
                sk,
                set_values={
                    "attempts": [*(current.get("attempts") or []), entry][-MAX_KEPT_ATTEMPTS:],
                    "attemptCount": count + 1,
                    "lastAttemptAt": entry["at"],
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
        set_values={"deliveryStatus": S.DISABLED.value, "nextAttemptAt": None},
        condition="#owner = :me AND #st IN (:pending, :failing)",
        names=_NAMES,
        values={":me": message_id, ":pending": S.PENDING.value, ":failing": S.FAILING.value},
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
        values={":pending": S.PENDING.value, ":now": now_ms, ":merchant": merchant_id},
    )
