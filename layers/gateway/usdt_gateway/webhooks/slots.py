"""At most settings().webhook_merchant_concurrency deliveries in flight per merchant, so one slow
receiver holds up only its own events. A delivery holds one of the merchant's slot items under a
lease for as long as its POST may take; a sender that dies frees its slot when the lease ends."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

from usdt_gateway import store
from usdt_gateway.config import settings

# Beyond the POST's own timeout: signing, the DynamoDB writes around it.
LEASE_MARGIN_S = 30


@dataclass(frozen=True)
class Slot:
    merchant_id: str
    index: int
    holder: str


def acquire(merchant_id: str, *, now_ms: int) -> Slot | None:
    """One of the merchant's free slots, or None when all are held."""
    s = settings()
    limit = s.webhook_merchant_concurrency
    until = now_ms + int((s.webhook_timeout_seconds + LEASE_MARGIN_S) * 1000)
    holder = secrets.token_hex(8)
    # Random order: concurrent senders of one merchant rarely race for the same slot.
    for index in random.sample(range(limit), limit):
        pk, sk = store.webhook_slot_key(merchant_id, index)
        # free (never used, released, or its holder's lease ran out) -> held by this delivery
        taken = store.update(
            pk,
            sk,
            set_values={"holder": holder, "leaseUntil": until},
            condition="attribute_not_exists(pk) OR #until < :now",
            names={"#until": "leaseUntil"},
            values={":now": now_ms},
        )
        if taken is not None:
            return Slot(merchant_id, index, holder)
    return None


def release(slot: Slot) -> None:
    pk, sk = store.webhook_slot_key(slot.merchant_id, slot.index)
    # held by this delivery -> free (a lease that ran out and was taken over stays the new holder's)
    store.update(
        pk,
        sk,
        set_values={"leaseUntil": 0},
        condition="#holder = :me",
        names={"#holder": "holder"},
        values={":me": slot.holder},
    )
