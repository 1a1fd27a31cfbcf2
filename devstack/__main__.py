"""`python -m devstack` (`make dev`): the gateway on http://127.0.0.1:$PORT until Ctrl-C, with a
local chain whose `local` orders are detected by the deposit scanner.

`python -m devstack pay <orderId> [--amount X] [--no-wait]` pays an order of the running stack
on the local chain (devstack/pay.py); `--parts N` splits the payment, `--late` makes it arrive
after the order's expiry. `python -m devstack refund <orderId>` refunds what a contract-mode order
did not take (devstack/refund.py); `python -m devstack sweep` pays an order of the xpub demo
merchant and moves its money with the offline sweep tool (devstack/sweep.py).
`python -m devstack reorg <orderId|txid>` and `python -m devstack dust <orderId|address>` make the
hard cases a webhook handler must survive (devstack/sandbox.py);
`python -m devstack fabricate <orderId>` a payment that never happened, shown by a lying RPC
endpoint (devstack/fabricate.py; the stack must run with DEVSTACK_ENDPOINTS=2).

PORT (default 3000) and DEVSTACK_STATE_DIR (default .local/, git-ignored) configure it;
DEVSTACK_RECEIVER_PORT the port of the stack's webhook receiver (default: a free one),
DEVSTACK_WEBHOOK_URL another receiver for the demo merchant's webhooks instead (no receiver then),
DEVSTACK_LOCAL_MODE the demo merchant's mode on `local`: contract (default: CREATE2 deposit
addresses swept to its treasury) or xpub (the dev wallet's addresses, nothing swept), and
DEVSTACK_ENDPOINTS the RPC endpoints the scanner reads `local` through: 1 (default: anvil) or 2 (a
pass-through proxy that can forge payments, then anvil, the second source that confirms each).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from devstack.chain import LATE_BY_S, MINTED_USDT
from devstack.functions import LOCAL_RETRY_SCHEDULE
from devstack.settlement import LOCAL_MODES, OWNER_KEY_FILE, SETTLEMENT_FILE
from devstack.sweep import DEFAULT_AMOUNT as DEFAULT_SWEEP_AMOUNT
from devstack.template import REPO_ROOT

if TYPE_CHECKING:
    from devstack.stack import Stack

DEFAULT_PORT = 3000


def _display(path: Path) -> str:
    """The path relative to the working directory when it lies below it (shorter to read and type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def banner(stack: Stack) -> str:
    url, key, secret = stack.base_url, stack.merchant["apiKey"], stack.merchant["secretKey"]
    chain = stack.chain.info
    example = REPO_ROOT / "examples" / "create_order.py"
    python = _display(Path(sys.executable))  # the venv's: a bare python may lack requests and web3
    example_cmd = f"{python} {_display(example)}"
    pay_cmd = f"{python} -m devstack pay <orderId>"
    if stack.state_dir != (REPO_ROOT / ".local").resolve():
        example_cmd += f" {shlex.quote(_display(stack.state_dir))}"
        pay_cmd = f"DEVSTACK_STATE_DIR={shlex.quote(_display(stack.state_dir))} {pay_cmd}"
    unscanned = [n for n in stack.networks if n not in stack.scanned_networks]
    retries = f"failed attempts are retried after {', '.join(LOCAL_RETRY_SCHEDULE.split(','))} s"
    if stack.webhook_log is not None:
        webhooks = (
            f"{stack.webhook_url}   (the demo merchant's default URL: the stack's receiver)\n"
            f"               it checks each signature, prints a line here per event and appends it to\n"
            f"               {_display(stack.webhook_log)}; {retries}"
        )
    else:
        webhooks = (
            f"{stack.webhook_url}   (the demo merchant's default URL, from DEVSTACK_WEBHOOK_URL)\n"
            f"               {retries}"
        )
    return f"""
USDT gateway, local stack: the API, scanner, settlement and webhook Lambdas on moto (DynamoDB, SQS,
KMS, SSM) and a local chain (anvil), no Docker, no AWS account

  API          {url}
  pay page     {url}/pay/<publicId>   (each order's paymentUrl: amount, address, QR code, live status)
  merchant     {_display(stack.merchant_file)}   (merchantId, apiKey, secretKey, webhookSecret, webhookUrl, baseUrl)
  dev wallet   {_display(stack.wallet_file)}   (development mnemonic: never send real funds to its addresses)
  networks     {", ".join(stack.networks)}   ({_modes(stack)})
  local chain  {chain.rpc_url}   (anvil, chain id {chain.chain_id}, a block a second)
{_endpoints_lines(stack)}
  test USDT    {chain.token_contract}   (TestUSDT, {chain.decimals} decimals)
  payer        {chain.payer}   (holds {Decimal(MINTED_USDT):,} test USDT; {_display(stack.chain_file)})
  scanner      `{"`, `".join(stack.scanned_networks)}` orders are detected: pending -> confirming -> confirmed
               ({", ".join(unscanned)} orders can be created but are not scanned: no RPC endpoint locally)
{_settlement_lines(stack)}
{_xpub_sweep_lines(stack)}
  webhooks     {webhooks}
               (compressed locally; deployed: 5 s to 10 h, over about 3 days)
  data         in memory: orders are gone when the stack stops; the merchant gets new keys at each start
  admin CLI    . {_display(stack.aws_env_file)} && .venv/bin/python -m usdt_gateway.admin status
               (this stack's endpoint and environment: create-key, list-keys, ... work on it too)

Public endpoint, no key:
  curl -s {url}/v1/networks

Signed GET (Signature-V2: HMAC-SHA256 of the lines v2, Request-Time, method, path, query, SHA-256 of the body):
  ts=$(date +%s%3N); body=''
  hash=$(printf '%s' "$body" | openssl dgst -sha256 | awk '{{print $NF}}')
  sig=$(printf 'v2\\n%s\\nGET\\n/v1/payment/orders\\n\\n%s' "$ts" "$hash" \\
    | openssl dgst -sha256 -hmac '{secret}' | awk '{{print $NF}}')
  curl -s {url}/v1/payment/orders -H 'API-Key: {key}' -H "Request-Time: $ts" -H "Signature-V2: $sig"

Send a test webhook (signed POST /v1/webhooks/test with the body {{}}, Signature-V2 as above):
  ts=$(date +%s%3N); body='{{}}'
  hash=$(printf '%s' "$body" | openssl dgst -sha256 | awk '{{print $NF}}')
  sig=$(printf 'v2\\n%s\\nPOST\\n/v1/webhooks/test\\n\\n%s' "$ts" "$hash" \\
    | openssl dgst -sha256 -hmac '{secret}' | awk '{{print $NF}}')
  curl -s -X POST {url}/v1/webhooks/test -d "$body" -H 'Content-Type: application/json' \\
    -H 'API-Key: {key}' -H "Request-Time: $ts" -H "Signature-V2: $sig"

Signature-V1 (Request-Time followed by the JSON body as json.dumps(body, sort_keys=True) writes it) is
taken only to create and to get an order: it binds neither method nor path (docs/signing.md).

Webhooks to your own receiver: DEVSTACK_WEBHOOK_URL=http://127.0.0.1:8787/ make dev (with e.g.
`python examples/webhook_receiver.py` listening there), or PUT /v1/webhooks/endpoint {{"url": ...}}.

Create an order on `local` and read it back, then pay it from the payer and watch its status change
(open its paymentUrl to watch the payment page too){_swept_too(stack)}:
  {example_cmd}
  {pay_cmd}

Hard cases for your webhook handler (README, Sandbox): `pay <orderId> --parts 3` or `--late`,
`reorg <orderId>` (its payment removed; --remine puts it back elsewhere), `dust <orderId> --zero`.

Or in Python, the reference client (paste as is):

import hashlib, hmac, json, secrets, time
import requests

API_KEY, SECRET_KEY = "{key}", "{secret}"
payload = {{"network": "local", "currency": "USDT", "amount": "50.00", "orderId": f"demo-{{secrets.token_hex(4)}}"}}
timestamp = str(int(time.time() * 1000))
message = f"{{timestamp}}{{json.dumps(payload, sort_keys=True)}}"
signature = hmac.new(SECRET_KEY.encode(), message.encode(), hashlib.sha256).hexdigest()
headers = {{"Content-Type": "application/json", "API-Key": API_KEY,
           "Request-Time": timestamp, "Signature-V1": signature}}
print(requests.post("{url}/v1/payment/order", headers=headers, json=payload, timeout=10).json())

Ctrl-C stops the stack.
"""


def _modes(stack: Stack) -> str:
    xpub = "xpub mode: each order gets the next address of the dev wallet"
    if stack.settlement_info is None:
        return xpub
    others = ", ".join(n for n in stack.networks if n != stack.settlement_info.network)
    return f"{stack.settlement_info.network}: contract mode, below; {others}: xpub mode, the dev wallet's addresses"


def _settlement_lines(stack: Stack) -> str:
    """What the banner says of the settlement: contract mode's factory, treasury and relayer."""
    info = stack.settlement_info
    every = f"{stack.settlement.every_s:g} s"
    if info is None:
        return (
            f"  settlement   off: `local` is in xpub mode (DEVSTACK_LOCAL_MODE=xpub), nothing is swept\n"
            f"               (the SettlementFunction runs every {every} all the same, as deployed)"
        )
    state, pad = stack.state_dir, " " * 15
    return "\n".join(
        [
            f"  settlement   `{info.network}` in contract mode: each order gets a CREATE2 deposit address under the",
            f"{pad}factory, swept to the treasury by the SettlementFunction every {every} (deployed: every",
            f"{pad}5 minutes) once {info.min_amount} USDT is unsettled or the oldest credit is "
            f"{info.max_age_seconds} s old;",
            f"{pad}a sweep is final after {info.confirmations} confirmations; an address holding money its order did",
            f"{pad}not take waits {info.refund_window_seconds} s first: "
            "`python -m devstack refund <orderId>` sends it back",
            f"  factory      {info.factory}   (the demo merchant's DepositFactory)",
            f"{pad}(Deposit implementation {info.implementation})",
            f"  treasury     {info.treasury}   (where every sweep pays, fixed in the factory)",
            f"  owner        {info.owner}   (signs refunds; its key in {_display(state / OWNER_KEY_FILE)})",
            f"  relayer      {info.relayer}   (pays the sweeps' gas; funded on the local chain)",
            f"{pad}(KMS key {info.relayer_key_id} in moto, ECC_SECG_P256K1; {_display(state / SETTLEMENT_FILE)})",
        ]
    )


def _xpub_sweep_lines(stack: Stack) -> str:
    """The second demo merchant: xpub mode, and the one command that moves its money."""
    pad = " " * 15
    sweep_cmd = "python -m devstack sweep"
    if stack.state_dir != (REPO_ROOT / ".local").resolve():
        sweep_cmd = f"DEVSTACK_STATE_DIR={shlex.quote(_display(stack.state_dir))} {sweep_cmd}"
    return "\n".join(
        [
            f"  xpub sweep   a second demo merchant keeps `local` in xpub mode (dev wallet account "
            f"{stack.xpub_merchant['account']},",
            f"{pad}{_display(stack.xpub_merchant_file)}): the gateway cannot move its money; `{sweep_cmd}`",
            f"{pad}pays one of its orders, then runs the offline sweep tool (a dry run, then --execute)",
            f"{pad}and shows the treasury's balance",
        ]
    )


def _endpoints_lines(stack: Stack) -> str:
    """How the scanner reads `local`: whose word credits a payment."""
    pad = " " * 15
    if stack.forger is None:
        return (
            f"  RPC          `local` through one endpoint, anvil: it is trusted, every deposit credited on its word\n"
            f"{pad}(DEVSTACK_ENDPOINTS=2: through a forging proxy, anvil confirming each deposit)"
        )
    return "\n".join(
        [
            f"  RPC          `local` through two endpoints: {stack.forger.url} (a pass-through proxy in front",
            f"{pad}of anvil, read first) and anvil, which confirms each deposit before it is credited;",
            f"{pad}`python -m devstack fabricate <orderId>` makes the proxy show a payment that never happened:",
            f"{pad}the deposit is held (disputed) and the order never turns confirmed",
        ]
    )


def _swept_too(stack: Stack) -> str:
    return "" if stack.settlement_info is None else ", and then its money swept to the treasury"


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}")
    return int(text)


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and each command's own (its errors show its usage)."""
    parser = argparse.ArgumentParser(prog="python -m devstack", description="Run the local stack (no arguments).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    pay = commands.add_parser(
        "pay",
        help="pay an order of the running stack on the local chain",
        description="Send test USDT from the local chain's payer to a `local` order, then "
        "follow its status until the payment is final.",
    )
    pay.add_argument("order_id", metavar="orderId")
    pay.add_argument("--amount", help="USDT to send, e.g. 12.5 (default: the order's exact amount)")
    pay.add_argument(
        "--parts",
        type=_positive,
        default=1,
        metavar="N",
        help="send the amount as N transfers, each mined before the next is sent",
    )
    pay.add_argument("--same-block", action="store_true", help="with --parts: all N transfers in one block")
    pay.add_argument(
        "--late", action="store_true", help="pay after the order's expiry (block time): wait until the chain gets there"
    )
    pay.add_argument(
        "--late-by",
        type=_positive,
        metavar="SECONDS",
        help=f"with --late: how far past the expiry (default {LATE_BY_S} s)",
    )
    pay.add_argument(
        "--warp",
        action="store_true",
        help="with --late: move the chain's clock forward instead of waiting (for good: until the "
        "stack restarts, every block is stamped that much later)",
    )
    pay.add_argument("--no-wait", action="store_true", help="exit once the transfer is mined")

    refund = commands.add_parser(
        "refund",
        help="refund money a `local` order did not take, signed with the factory owner's key",
        description="Ask the gateway for a refund of money the order did not take (an excess, "
        "unmatched money), sign its typed data with the owner key in owner-key.json (checked by "
        "the SDK first), submit the signature, and follow the refund until it is final.",
    )
    refund.add_argument("order_id", metavar="orderId")
    refund.add_argument("--to", metavar="ADDRESS", help="the recipient (default: the chain's payer)")
    refund.add_argument("--amount", help="USDT to refund (default: all that is refundable)")
    refund.add_argument("--no-wait", action="store_true", help="exit once the signature is accepted")

    sweep = commands.add_parser(
        "sweep",
        help="xpub mode: pay an order of the xpub demo merchant, then sweep it with the offline tool",
        description="Create and pay an order of the stack's second demo merchant, whose `local` "
        "network is in xpub mode, then run the SDK's offline sweep tool (python -m "
        "usdt_gateway_client.sweep) as a merchant does: a dry run, then --execute; and show the "
        "treasury's balance.",
    )
    sweep.add_argument("--amount", help=f"USDT to pay (default {DEFAULT_SWEEP_AMOUNT})")
    sweep.add_argument("--dry-run", action="store_true", help="stop after the tool's dry run: nothing is swept")

    reorg = commands.add_parser(
        "reorg",
        help="reorganise the local chain under an order's payment",
        description="Replace the last blocks of the local chain (anvil_reorg) so that the "
        "order's transfers (or the txid) are removed, or re-mined elsewhere "
        "with --remine; then follow the order.",
    )
    reorg.add_argument("target", metavar="orderId|txid")
    reorg.add_argument(
        "--depth",
        type=_positive,
        metavar="N",
        help="blocks to replace, counted from the head (default: just enough to reach the transfer)",
    )
    reorg.add_argument(
        "--remine",
        action="store_true",
        help="put the transfers back in a replacement block: the same signed transactions, same txids",
    )
    reorg.add_argument(
        "--offset",
        type=_count,
        metavar="K",
        help="with --remine: the replacement block, 0 (the first) to depth-1 (the new head, default)",
    )
    reorg.add_argument(
        "--new-txid",
        action="store_true",
        help="with --remine: new transactions from the same sender, to the same recipient, for the "
        "same amount (new txids)",
    )
    reorg.add_argument("--no-wait", action="store_true", help="exit once the chain is reorganised")

    dust = commands.add_parser(
        "dust",
        help="send a dust or zero-value transfer to an order or address",
        description="Send a tiny transfer (default: 0.000001 test USDT), a zero-value one "
        "(--zero), or transferFrom(victim, address, 0) from another account "
        "(--spoof), as anyone can; then follow the order.",
    )
    dust.add_argument("target", metavar="orderId|address")
    size = dust.add_mutually_exclusive_group()
    size.add_argument("--amount", help="USDT to send (default: 0.000001, the token's smallest unit)")
    size.add_argument("--zero", action="store_true", help="a transfer of 0")
    dust.add_argument(
        "--spoof",
        action="store_true",
        help="transferFrom(victim, address, 0) sent by another anvil account: no allowance needed",
    )
    dust.add_argument(
        "--victim",
        metavar="ADDRESS",
        help="with --spoof: whose address the Transfer log shows as the sender (default: the payer)",
    )
    dust.add_argument("--no-wait", action="store_true", help="exit once the transfer is mined")

    fabricate = commands.add_parser(
        "fabricate",
        help="have the stack's lying RPC endpoint show a payment of an order that never happened",
        description="With the stack started with two RPC endpoints for `local` (DEVSTACK_ENDPOINTS=2), "
        "ask the pass-through proxy the scanner reads first to show a Transfer of the order's amount "
        "to its address, with no transaction on the chain; then follow the order: the deposit is held "
        "(disputed) once anvil, the second endpoint, contradicts it.",
    )
    fabricate.add_argument("order_id", metavar="orderId")
    fabricate.add_argument("--amount", help="USDT the forged transfer shows (default: the order's amount)")
    fabricate.add_argument("--no-wait", action="store_true", help="exit once the proxy shows it")
    return parser, {"pay": pay, "sweep": sweep, "reorg": reorg, "dust": dust, "fabricate": fabricate}


def main(argv: list[str] | None = None) -> int:
    parser, commands = _parser()
    args = parser.parse_args(argv)
    state_dir = Path(os.environ.get("DEVSTACK_STATE_DIR") or REPO_ROOT / ".local")
    if args.command is None:
        return _run_stack(state_dir)
    if mistake := _mistake(args):
        commands[args.command].error(mistake)  # exits 2, as argparse does for its own checks
    return _sandbox(args.command, state_dir, args)


def _mistake(args: argparse.Namespace) -> str | None:
    """Options that only make sense with another one."""
    if args.command == "pay":
        if args.same_block and args.parts < 2:
            return "--same-block needs --parts 2 or more"
        if (args.late_by is not None or args.warp) and not args.late:
            return "--late-by and --warp go with --late"
    if args.command == "reorg" and (args.offset is not None or args.new_txid) and not args.remine:
        return "--offset and --new-txid go with --remine"
    if args.command == "dust" and args.victim is not None and not args.spoof:
        return "--victim goes with --spoof"
    return None


def _sandbox(command: str, state_dir: Path, args: argparse.Namespace) -> int:
    """`pay`, `refund`, `sweep`, `reorg`, `dust` or `fabricate`: exit code 2 when refused, 1 when
    something failed on the way (`sweep`: the sweep tool's own exit code when it ran and failed)."""
    from devstack.fabricate import fabricate
    from devstack.pay import Failed, Refused, pay
    from devstack.refund import refund
    from devstack.sandbox import dust, reorg
    from devstack.sweep import sweep

    try:
        if command == "sweep":
            return sweep(state_dir, amount=args.amount, dry_run=args.dry_run)
        if command == "pay":
            pay(
                state_dir,
                args.order_id,
                amount=args.amount,
                wait=not args.no_wait,
                parts=args.parts,
                same_block=args.same_block,
                late=args.late,
                late_by=args.late_by or LATE_BY_S,
                warp=args.warp,
            )
        elif command == "refund":
            refund(state_dir, args.order_id, to=args.to, amount=args.amount, wait=not args.no_wait)
        elif command == "fabricate":
            fabricate(state_dir, args.order_id, amount=args.amount, wait=not args.no_wait)
        elif command == "reorg":
            reorg(
                state_dir,
                args.target,
                depth=args.depth,
                remine=args.remine,
                offset=args.offset,
                new_txid=args.new_txid,
                wait=not args.no_wait,
            )
        else:
            dust(
                state_dir,
                args.target,
                amount=args.amount,
                zero=args.zero,
                spoof=args.spoof,
                victim=args.victim,
                wait=not args.no_wait,
            )
    except Refused as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    except Failed as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_stack(state_dir: Path) -> int:
    from devstack.stack import WebhookUrlRefused, start_stack  # moto and the chain tooling: only for running the stack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("werkzeug", "botocore"):  # moto's access log; the SDK's "found credentials" notes
        logging.getLogger(noisy).setLevel(logging.WARNING)

    raw_port = os.environ.get("PORT") or str(DEFAULT_PORT)
    raw_receiver_port = os.environ.get("DEVSTACK_RECEIVER_PORT") or "0"
    for name, value in (("PORT", raw_port), ("DEVSTACK_RECEIVER_PORT", raw_receiver_port)):
        if not value.isdigit() or not 0 <= int(value) <= 65535:
            print(f"{name} must be a port number, not {value!r}", file=sys.stderr)
            return 2
    webhook_url = os.environ.get("DEVSTACK_WEBHOOK_URL") or None
    local_mode = os.environ.get("DEVSTACK_LOCAL_MODE") or "contract"
    if local_mode not in LOCAL_MODES:
        print(f"DEVSTACK_LOCAL_MODE must be one of {', '.join(LOCAL_MODES)}, not {local_mode!r}", file=sys.stderr)
        return 2
    endpoints = os.environ.get("DEVSTACK_ENDPOINTS") or "1"
    if endpoints not in ("1", "2"):
        print(f"DEVSTACK_ENDPOINTS must be 1 or 2, not {endpoints!r}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts the shutdown

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    try:
        stack = start_stack(
            port=int(raw_port),
            state_dir=state_dir,
            webhook_url=webhook_url,
            receiver_port=int(raw_receiver_port),
            local_mode=local_mode,
            endpoints=int(endpoints),
        )
    except FileNotFoundError as exc:  # anvil not installed
        print(f"cannot start the local stack: {exc}", file=sys.stderr)
        return 1
    except WebhookUrlRefused as exc:
        print(f"cannot start the local stack: DEVSTACK_WEBHOOK_URL: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        ports = f"port {raw_port}" + (f" or receiver port {raw_receiver_port}" if int(raw_receiver_port) else "")
        print(
            f"cannot start the local stack on {ports}: {exc} (PORT=... or DEVSTACK_RECEIVER_PORT=... picks another)",
            file=sys.stderr,
        )
        return 1
    try:
        print(banner(stack), flush=True)
        print(f"ready on {stack.base_url}", flush=True)
        stop.wait()
        print("stopping", flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
