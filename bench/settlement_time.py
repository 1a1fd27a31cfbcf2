"""The time from `order.confirmed` to the sweep being final, on the local stack as `make dev` runs
it (contract mode on `local`).

    .venv/bin/python -m bench.settlement_time [--payments 10] [--amount 5.00]

One local stack in the bench's process (devstack.stack.start_stack: moto server, anvil mining a
block a second, the template's handlers): the scanner loop, the webhook poller and receiver, and
the SettlementFunction handler on its compressed schedule (every 2 s; 5 minutes when deployed)
with the local settings (minimum 1 USDT, maximum age 60 s); `local` is final after 2
confirmations, for payments and sweeps alike. For each of --payments orders of the demo merchant,
one at a time: create it (signed HTTP, with a key of the bench's own and a high rate limit), wait
a random 0-2 s (so that confirmations fall at every phase of the settlement's schedule), pay it
from the chain's payer, and wait until the stack's receiver has its `settlement.completed`.

Every time comes from the gateway's one clock, in this process:
- confirmed: the `order.confirmed` event's createdAt (set in the transaction that credits it);
- claimed: the settlement's createdAt (the run that claimed the deposit and sent the sweep);
- final: the settlement's closedAt (the run that found the sweep final and closed it);
- delivered: the receiver's arrival time of `settlement.completed`.
The sweep's block comes from its receipt, and the payment's from its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.webhooks import Api, _demo_api
from devstack.pay import Payer
from devstack.receiver import Delivery
from devstack.stack import SETTLEMENT_EVERY_S, Stack, start_stack
from usdt_gateway.money import parse_amount, to_base_units

WAIT_S = 120.0  # a guard against a hung run: a sweep follows a payment within seconds


@dataclass(frozen=True)
class Sample:
    confirmed_to_claimed: float
    claimed_to_final: float
    confirmed_to_final: float
    confirmed_to_delivered: float
    blocks: int  # the sweep's block after the payment's


def _delivery(stack: Stack, order_id: str, event_type: str) -> Delivery:
    assert stack.receiver is not None

    def match(deliveries: list[Delivery]) -> Delivery | None:
        for d in deliveries:
            event = d.event or {}
            data = d.data
            if event.get("type") == event_type and order_id in (data.get("orders") or [data.get("orderId")]):
                return d
        return None

    found = match(stack.receiver.wait_for(lambda ds: match(ds) is not None, WAIT_S))
    if found is None:
        raise RuntimeError(f"no {event_type} for {order_id} within {WAIT_S:.0f} s")
    return found


def _one(stack: Stack, api: Api, payer: Payer, units: int, amount: str) -> Sample:
    order = api.create(amount)
    time.sleep(random.uniform(0, SETTLEMENT_EVERY_S))
    paid_in = payer.wait_mined(payer.transfer(order["address"], units))
    confirmed = _delivery(stack, order["orderId"], "order.confirmed")
    settled = _delivery(stack, order["orderId"], "settlement.completed")
    confirmed_at = int((confirmed.event or {})["createdAt"])
    data = settled.data
    if data["status"] != "completed" or data["orders"] != [order["orderId"]]:
        raise RuntimeError(f"unexpected settlement: {data}")
    receipt = payer.receipt(data["txHash"])
    assert receipt is not None
    return Sample(
        confirmed_to_claimed=(int(data["createdAt"]) - confirmed_at) / 1000,
        claimed_to_final=(int(data["closedAt"]) - int(data["createdAt"])) / 1000,
        confirmed_to_final=(int(data["closedAt"]) - confirmed_at) / 1000,
        confirmed_to_delivered=settled.received_at - confirmed_at / 1000,
        blocks=int(receipt["blockNumber"], 16) - paid_in,
    )


def _row(name: str, values: list[float], unit: str = "s") -> str:
    fmt = "{:.2f} s" if unit == "s" else "{:.0f}"
    cells = [statistics.median(values), max(values), min(values)]
    return f"| {name} | " + " | ".join(fmt.format(v) for v in cells) + f" | {len(values)} |"


def measure(stack: Stack, payments: int, amount: str) -> list[Sample]:
    assert stack.receiver is not None and stack.settlement_info is not None
    stack.receiver.echo = lambda line: None  # the bench prints a table, not one line per event
    api = _demo_api(stack)
    payer = Payer(stack.chain.info)
    units = to_base_units(parse_amount(amount), stack.chain.info.decimals)
    return [_one(stack, api, payer, units, amount) for _ in range(payments)]


def report(samples: list[Sample], stack: Stack) -> None:
    info = stack.settlement_info
    assert info is not None
    print(
        f"\n{len(samples)} payments, one at a time; settlement every {SETTLEMENT_EVERY_S:g} s, "
        f"a block a second, final after {info.confirmations} confirmations; "
        f"settlement runs: {stack.settlement.invocations}, failed: {stack.settlement.failures}\n"
    )
    print("| interval | p50 | max | min | n |\n| --- | --- | --- | --- | --- |")
    print(_row("order.confirmed -> sweep final (settlement closedAt)", [s.confirmed_to_final for s in samples]))
    print(_row("order.confirmed -> claimed, sweep sent (createdAt)", [s.confirmed_to_claimed for s in samples]))
    print(_row("claimed -> final", [s.claimed_to_final for s in samples]))
    print(_row("order.confirmed -> settlement.completed at the receiver", [s.confirmed_to_delivered for s in samples]))
    print(_row("blocks from the payment's to the sweep's", [float(s.blocks) for s in samples], unit="blocks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--payments", type=int, default=10)
    parser.add_argument("--amount", default="5.00", help="USDT per payment (1 or more is swept at once)")
    args = parser.parse_args()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.WARNING)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    noisy = ("werkzeug", "usdt-gateway")  # moto's access log; the functions' own lines (set at their init)
    with tempfile.TemporaryDirectory() as state_dir:
        for name in noisy:
            logging.getLogger(name).setLevel(logging.WARNING)
        stack = start_stack(state_dir=Path(state_dir))
        for name in noisy:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            report(measure(stack, args.payments, args.amount), stack)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
