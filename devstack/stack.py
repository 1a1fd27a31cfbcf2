"""The local stack: the template's Lambda handlers behind a small API Gateway stand-in, on moto,
with a local chain and its deposit scanner, and webhooks delivered to a local receiver.

No Docker: moto runs in server mode inside this process and every boto3 client reaches it
through AWS_ENDPOINT_URL; the API handler runs in-process on API Gateway REST (v1) proxy events
built from real HTTP requests, for the routes template.yaml declares. anvil runs the `local`
network with the test USDT, and a thread invokes the ScannerFunction handler on it again and
again, so payments on the local chain move orders through the lifecycle within seconds.

The demo merchant's `local` network is in contract mode (devstack/settlement.py): its factory is
deployed on anvil and the SettlementFunction handler runs every few seconds (its schedule,
compressed), with the relayer's key in moto's KMS, so a paid order is swept to the treasury
seconds after it is confirmed. `local_mode="xpub"` keeps `local` in xpub mode instead. A second
demo merchant keeps `local` in xpub mode either way: its money stays on the dev wallet's addresses
until the offline sweep tool moves it (devstack/sweep.py).

Webhooks go as deployed: the writers publish each committed event to the template's
WebhookQueue, a poller feeds it to the WebhookFunction handler as Lambda's SQS event source
mapping does, and the OutboxFunction handler runs every few seconds (its schedule, compressed).
The demo merchant's webhook URL is the stack's receiver (devstack/receiver.py) unless another is
given; failed attempts are retried on a compressed schedule (functions.LOCAL_RETRY_SCHEDULE).

    stack = start_stack(port=0, state_dir=Path(".local"))
    ...  # HTTP on stack.base_url; demo merchant in stack.merchant; its webhooks in stack.receiver
    stack.stop()
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from devstack.apigateway import HOST, ApiGateway
from devstack.chain import NETWORK as CHAIN_NETWORK
from devstack.chain import LocalChain, start_local_chain
from devstack.environment import ACCOUNT_ID, Environment, check_endpoint, point_aws_at, reset_gateway_caches
from devstack.event_source import EventSourceMapping
from devstack.forging_proxy import FORGER_FILE, ForgingProxy
from devstack.functions import (
    PER_FUNCTION_LABELS,
    LocalFunction,
    add_layers_to_path,
    load_functions,
    resolved_environment,
)
from devstack.moto_server import AtomicMotoServer
from devstack.receiver import LOG_FILE, WebhookReceiver
from devstack.scanner_loop import ScannerLoop
from devstack.schedule import Schedule
from devstack.settlement import LocalMode, SettlementInfo, create_relayer_key, switch, write_state
from devstack.sweep import MERCHANT_XPUB_FILE, SWEEP_STATE_FILES
from devstack.template import Queue, Template, api_routes, create_queues, create_table, load_template
from devstack.wallet import SWEEP_DEMO_ACCOUNT, WALLET_FILE, DevWallet, Family, dev_wallet, write_private

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

STACK_NAME = "usdt-gateway-local"
TABLE_NAME = STACK_NAME
MERCHANT_FILE = "merchant.json"
# The functions' environment as shell exports (moto's endpoint, the table, the key, the networks):
# `. .local/aws.env` and the admin CLI works on the running stack (`admin status`, `create-key`).
AWS_ENV_FILE = "aws.env"
_AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE",
)
SCANNER_FUNCTION = "ScannerFunction"
WEBHOOK_FUNCTION = "WebhookFunction"
OUTBOX_FUNCTION = "OutboxFunction"
SETTLEMENT_FUNCTION = "SettlementFunction"
WEBHOOK_QUEUE = "WebhookQueue"  # WebhookFunction's SQS event source
# OutboxFunction runs every minute when deployed; it publishes only events older than 30 s
# (their writer may still be about to), so locally it comes every few seconds.
OUTBOX_EVERY_S = 5.0
# SettlementFunction runs every 5 minutes when deployed; locally every few seconds, and a paid
# order qualifies at once from 1 USDT (smaller sums after a minute), so that a sweep follows a
# payment while the developer watches. Both within the template's bounds for the parameters.
SETTLEMENT_EVERY_S = 2.0
SETTLEMENT_MIN_AMOUNT = "1"
SETTLEMENT_MAX_AGE_S = "60"
# Money an order did not take (an excess, unmatched money) waits this long before its address is
# swept (a day when deployed): time to try `python -m devstack refund` on it.
SETTLEMENT_REFUND_WINDOW_S = "120"
# Template parameters set for the local stack. The local chain first: orders on it are scanned.
# The public chains take orders too, but without an RPC endpoint they are not scanned.
ENABLED_NETWORKS = f"{CHAIN_NETWORK},tron,eth,bsc"
# Short scanner invocations, so that stopping the stack waits at most this long for the scanner.
SCAN_SECONDS = "2"


@dataclass
class Stack:
    """A running local stack; `stop` (or leaving a `with` block) undoes everything it started and set."""

    base_url: str
    port: int
    state_dir: Path
    merchant: dict[str, str]
    merchant_file: Path
    xpub_merchant: dict[str, str]  # the second demo merchant: `local` in xpub mode, swept by the offline tool
    xpub_merchant_file: Path
    wallet_file: Path
    aws_env_file: Path  # `. aws.env`: the admin CLI on this stack
    aws_endpoint: str
    table_name: str
    kms_key_id: str
    networks: list[str]
    scanned_networks: list[str]
    chain: LocalChain
    chain_file: Path
    # DEVSTACK_ENDPOINTS=2: a pass-through proxy in front of anvil, the scanner's preferred endpoint
    # (anvil itself the second), which `python -m devstack fabricate` makes forge a payment
    forger: ForgingProxy | None
    rpc_endpoints_parameter: str
    functions: dict[str, LocalFunction]
    scanner: ScannerLoop
    webhook_url: str  # the demo merchant's default webhook URL
    receiver: WebhookReceiver | None  # the stack's own receiver, unless another URL was given
    webhook_log: Path | None  # what the stack's receiver got (state_dir/webhooks.jsonl)
    webhooks: EventSourceMapping  # WebhookQueue -> WebhookFunction
    outbox: Schedule  # OutboxFunction, every OUTBOX_EVERY_S
    settlement: Schedule  # SettlementFunction, every SETTLEMENT_EVERY_S
    local_mode: LocalMode
    relayer_key_id: str  # the settlement relayer's key in moto's KMS (RelayerKey)
    relayer: str  # its address on the local chain
    settlement_info: SettlementInfo | None  # contract mode's facts (state_dir/settlement.json); None in xpub mode
    queue_urls: dict[str, str]  # by logical id
    _moto: AtomicMotoServer
    _server: ApiGateway
    _thread: threading.Thread
    _env: Environment
    _stopped: bool = False

    def stop(self) -> None:
        """Stop the loops, the chain, serving, the receiver and moto, and put the process
        environment back."""
        if self._stopped:
            return
        self._stopped = True
        try:
            # The loops first, asked all at once: their invocations use the chain, the table and the queues.
            for loop in (self.webhooks, self.outbox, self.settlement, self.scanner):
                loop.request_stop()
            self.webhooks.stop()  # between two polls, or one batch of deliveries: quick
            self.outbox.stop()
            self.settlement.stop()  # a few RPC calls and KMS signatures at most
            if self.receiver is not None:
                self.receiver.stop()  # while the scanner's run (up to SCAN_SECONDS) ends
            self.scanner.stop()
        finally:
            # Then the chain, even when a second Ctrl-C cuts the above short: anvil runs in a
            # session of its own, so the terminal's Ctrl-C does not end it.
            if self.forger is not None:
                self.forger.close()
                (self.state_dir / FORGER_FILE).unlink(missing_ok=True)
            self.chain.stop()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        # moto keeps its data in module state shared by every server of this process: leave none.
        with contextlib.suppress(Exception):
            boto3.client("dynamodb").delete_table(TableName=self.table_name)
        with contextlib.suppress(Exception):
            boto3.client("ssm").delete_parameter(Name=self.rpc_endpoints_parameter)
        _delete_queues(list(self.queue_urls.values()))
        self._moto.stop()
        self._env.restore()
        reset_gateway_caches()
        _running.discard(id(self))

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def _cleanup_on_error(*actions: Callable[[], object]) -> Iterator[list[Callable[[], object]]]:
    pending = list(actions)
    try:
        yield pending
    except BaseException:
        for action in reversed(pending):
            with contextlib.suppress(Exception):
                action()
        raise


def _create_fresh_table(template: Template) -> None:
    """Create the table; moto's state outlives a server within a process, so replace any leftover."""
    client = boto3.client("dynamodb")
    try:
        create_table(client, TABLE_NAME, template)
    except client.exceptions.ResourceInUseException:
        client.delete_table(TableName=TABLE_NAME)
        client.get_waiter("table_not_exists").wait(TableName=TABLE_NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        create_table(client, TABLE_NAME, template)


def _delete_queues(urls: list[str]) -> None:
    sqs = boto3.client("sqs")
    for url in urls:
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=url)


def _create_fresh_queues(template: Template) -> dict[str, Queue]:
    """Create the template's queues; moto's state outlives a server within a process, so drop any
    leftover first (with its messages: events of another stack's table)."""
    sqs = boto3.client("sqs")
    _delete_queues(sqs.list_queues(QueueNamePrefix=f"{STACK_NAME}-").get("QueueUrls", []))
    return create_queues(sqs, template, STACK_NAME)


class WebhookUrlRefused(ValueError):
    """The webhook URL given for the demo merchant fails the check every delivery makes."""


def _check_webhook_url(url: str) -> None:
    """Nothing could ever be delivered to a URL the sender refuses (local mode allows http on
    loopback): say so at start, not at the first delivery."""
    from usdt_gateway.webhooks import endpoints
    from usdt_gateway.webhooks.urlguard import UnsafeUrl

    try:
        endpoints.check(url)
    except UnsafeUrl as exc:
        raise WebhookUrlRefused(f"{url!r} is refused: {exc.message}") from None


def _new_merchant(name: str, xpubs: dict[Family, str], base_url: str, webhook_url: str) -> dict[str, str]:
    """A new merchant with a new API key, these xpubs and `webhook_url` as its default webhook URL."""
    from usdt_gateway import merchants

    merchant = merchants.create_merchant(name, webhook_url=webhook_url)
    key = merchants.create_api_key(merchant["merchantId"], label="devstack")
    for family, xpub in xpubs.items():
        merchants.configure_xpub(merchant["merchantId"], family, xpub)
    return {
        "merchantId": merchant["merchantId"],
        "apiKey": key["apiKey"],
        "secretKey": key["secretKey"],
        "webhookSecret": merchant["webhookSecret"],
        "webhookUrl": webhook_url,
        "baseUrl": base_url,
    }


def _demo_merchant(state_dir: Path, wallet: DevWallet, base_url: str, webhook_url: str) -> dict[str, str]:
    """The demo merchant, with the dev wallet's account-0 xpubs, written to state_dir/merchant.json."""
    info = _new_merchant("Demo merchant (local)", wallet.xpubs, base_url, webhook_url)
    write_private(state_dir / MERCHANT_FILE, info)
    return info


def _xpub_demo_merchant(state_dir: Path, wallet: DevWallet, base_url: str, webhook_url: str) -> dict[str, str]:
    """A second demo merchant whose `local` orders stay in xpub mode whatever the first one's mode:
    addresses of the dev wallet's EVM account SWEEP_DEMO_ACCOUNT, swept by the offline tool
    (`python -m devstack sweep`). Written to state_dir/merchant-xpub.json with what the tool needs
    besides its secrets' files; the previous start's sweep state (treasury, funding key, journal)
    is removed: it describes a chain that is gone."""
    from usdt_gateway.config import networks

    info = _new_merchant("Demo merchant, xpub mode (local)", {"evm": wallet.sweep_demo_xpub}, base_url, webhook_url)
    info |= {
        "network": CHAIN_NETWORK,
        "account": str(SWEEP_DEMO_ACCOUNT),
        "confirmations": str(networks()[CHAIN_NETWORK].finality.confirmations),
    }
    write_private(state_dir / MERCHANT_XPUB_FILE, info)
    for name in SWEEP_STATE_FILES:
        (state_dir / name).unlink(missing_ok=True)
    return info


def _local_settlement(merchant_id: str, chain: LocalChain, relayer: str, relayer_key_id: str) -> SettlementInfo | None:
    """Switch the merchant's `local` network to the factory the chain deployed (contract mode),
    and say what the sandbox needs to know of it; None when the chain deployed none (xpub mode)."""
    if chain.contracts is None:
        return None
    from usdt_gateway.config import networks

    switch(merchant_id, CHAIN_NETWORK, chain.contracts, chain.info.rpc_url)
    return SettlementInfo(
        network=CHAIN_NETWORK,
        implementation=chain.contracts.implementation,
        factory=chain.contracts.factory,
        treasury=chain.contracts.treasury,
        owner=chain.contracts.owner,
        relayer=relayer,
        relayer_key_id=relayer_key_id,
        min_amount=SETTLEMENT_MIN_AMOUNT,
        max_age_seconds=int(SETTLEMENT_MAX_AGE_S),
        every_seconds=SETTLEMENT_EVERY_S,
        confirmations=networks()[CHAIN_NETWORK].finality.confirmations,
        refund_window_seconds=int(SETTLEMENT_REFUND_WINDOW_S),
    )


# Stacks running in this process. One at a time: a stack points the whole process (environment,
# the gateway's cached clients and settings) at its own moto server.
_running: set[int] = set()


def _write_aws_env(path: Path, names: list[str]) -> None:
    """`export NAME=value` lines of these variables as this process has them, owner-readable."""
    lines = [f"export {name}={shlex.quote(os.environ[name])}" for name in names if name in os.environ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(
            "# The local stack's AWS endpoint (moto) and the functions' environment, for the admin CLI:\n"
            "#   . .local/aws.env && .venv/bin/python -m usdt_gateway.admin status\n"
        )
        fh.write("\n".join(lines) + "\n")


def start_stack(
    *,
    port: int = 0,
    state_dir: Path,
    webhook_url: str | None = None,
    receiver_port: int = 0,
    local_mode: LocalMode = "contract",
    endpoints: int = 1,
) -> Stack:
    """Start moto and the local chain, create the template's table, queues, KMS keys and the RPC
    endpoints parameter, load the functions, serve HTTP on 127.0.0.1:`port` (0: a free port),
    create the demo merchant (written to state_dir) with its `local` network in `local_mode`,
    start scanning the local chain, settling it and delivering webhooks. They go to `webhook_url`
    if given, else to a receiver the stack starts on 127.0.0.1:`receiver_port` (0: a free port).
    `endpoints=2`: the scanner reads `local` through a pass-through proxy that can forge payments
    (devstack/forging_proxy.py), anvil itself the second endpoint that confirms each deposit."""
    if endpoints not in (1, 2):
        raise ValueError(f"endpoints must be 1 or 2, not {endpoints}")
    if _running:
        raise RuntimeError("a local stack is already running in this process; stop it first")
    template = load_template()
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    env = Environment()

    server = ApiGateway(port)  # first: a port in use fails before anything starts
    moto = AtomicMotoServer(ip_address=HOST, port=0, verbose=False)
    with _cleanup_on_error(server.server_close, env.restore, reset_gateway_caches) as cleanup:
        receiver = None if webhook_url else WebhookReceiver(receiver_port, state_dir / LOG_FILE)
        if receiver is not None:
            cleanup.append(receiver.stop)
        moto.start()
        cleanup.append(moto.stop)
        moto_host, moto_port = moto.get_host_and_port()
        endpoint = f"http://{moto_host}:{moto_port}"
        region = point_aws_at(endpoint, env)
        check_endpoint(endpoint)
        kms: KMSClient = boto3.client("kms")
        # The relayer's key first: the chain funds its address (both as an operator would).
        relayer_key_id, relayer_key_arn, relayer = create_relayer_key(
            kms, f"{STACK_NAME} settlement relayer (pays the gas of sweeps to merchants' treasuries)"
        )
        chain = start_local_chain(state_dir, relayer=relayer if local_mode == "contract" else None)
        cleanup.append(chain.stop)
        (state_dir / FORGER_FILE).unlink(missing_ok=True)  # a previous start's
        forger = ForgingProxy(chain.info.rpc_url) if endpoints == 2 else None
        if forger is not None:
            cleanup.append(forger.close)
            write_private(state_dir / FORGER_FILE, {"url": forger.url})

        _create_fresh_table(template)
        queues = _create_fresh_queues(template)
        cleanup.append(lambda: _delete_queues([q.url for q in queues.values()]))
        key = kms.create_key(
            Description=f"{STACK_NAME} merchant API and webhook secrets",
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
        )["KeyMetadata"]
        base_url = f"http://{HOST}:{server.port}"

        routes = api_routes(template)
        function_ids = [
            *dict.fromkeys(route.function for route in routes),
            SCANNER_FUNCTION,
            WEBHOOK_FUNCTION,
            OUTBOX_FUNCTION,
            SETTLEMENT_FUNCTION,
        ]
        refs = {
            "EnabledNetworks": ENABLED_NETWORKS,
            "NetworksConfig": chain.networks_config(),
            "ScanSeconds": SCAN_SECONDS,
            "PublicBaseUrl": base_url,
            "Table": TABLE_NAME,
            "SecretsKey": key["KeyId"],
            "RelayerKey": relayer_key_id,
            "SettlementMinAmount": SETTLEMENT_MIN_AMOUNT,
            "SettlementMaxAgeSeconds": SETTLEMENT_MAX_AGE_S,
            "SettlementRefundWindowSeconds": SETTLEMENT_REFUND_WINDOW_S,
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            **{q.logical_id: q.url for q in queues.values()},
        }
        attrs = {
            "Table.Arn": f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{TABLE_NAME}",
            "SecretsKey.Arn": key["Arn"],
            "RelayerKey.Arn": relayer_key_arn,
            **{f"{q.logical_id}.Arn": q.arn for q in queues.values()},
            **{f"{q.logical_id}.QueueName": q.name for q in queues.values()},
        }
        function_env = resolved_environment(template, function_ids, refs=refs, attrs=attrs)
        for name, value in function_env.items():
            env.set(name, value)
        _write_aws_env(state_dir / AWS_ENV_FILE, [*_AWS_VARIABLES, *sorted(set(function_env) - PER_FUNCTION_LABELS)])
        # The parameter the template names, as an operator creates it before deploying: the
        # scanner reads its endpoints from it at cold start, exactly as deployed.
        rpc_parameter = os.environ["RPC_ENDPOINTS_PARAMETER"]
        boto3.client("ssm").put_parameter(
            Name=rpc_parameter,
            Type="SecureString",
            Value=chain.rpc_endpoints(first=forger.url if forger is not None else None),
            Overwrite=True,
        )
        add_layers_to_path(template, function_ids)
        reset_gateway_caches()
        functions = load_functions(template, function_ids, stack_name=STACK_NAME, region=region)
        server.route(routes, functions)

        url = receiver.url if receiver is not None else str(webhook_url)
        _check_webhook_url(url)
        wallet = dev_wallet(state_dir)
        merchant = _demo_merchant(state_dir, wallet, base_url, url)
        xpub_merchant = _xpub_demo_merchant(state_dir, wallet, base_url, url)
        settlement_info = _local_settlement(merchant["merchantId"], chain, relayer, relayer_key_id)
        write_state(state_dir, settlement_info, chain.contracts)
        if receiver is not None:
            receiver.serve([merchant["webhookSecret"], xpub_merchant["webhookSecret"]])
        thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="devstack-http", daemon=True)
        thread.start()
        scanner = ScannerLoop(functions[SCANNER_FUNCTION], CHAIN_NETWORK)
        webhooks = EventSourceMapping(
            queues[WEBHOOK_QUEUE].url, functions[WEBHOOK_FUNCTION].invoke, name="devstack-webhooks"
        )
        outbox = Schedule(functions[OUTBOX_FUNCTION], every_s=OUTBOX_EVERY_S, region=region)
        settlement = Schedule(functions[SETTLEMENT_FUNCTION], every_s=SETTLEMENT_EVERY_S, region=region)
        for loop in (scanner, webhooks, outbox, settlement):
            loop.start()
            cleanup.append(loop.stop)

    from usdt_gateway.config import networks

    stack = Stack(
        base_url=base_url,
        port=server.port,
        state_dir=state_dir,
        merchant=merchant,
        merchant_file=state_dir / MERCHANT_FILE,
        xpub_merchant=xpub_merchant,
        xpub_merchant_file=state_dir / MERCHANT_XPUB_FILE,
        wallet_file=state_dir / WALLET_FILE,
        aws_env_file=state_dir / AWS_ENV_FILE,
        aws_endpoint=endpoint,
        table_name=TABLE_NAME,
        kms_key_id=key["KeyId"],
        networks=list(networks()),
        scanned_networks=[CHAIN_NETWORK],
        chain=chain,
        chain_file=chain.file,
        forger=forger,
        rpc_endpoints_parameter=rpc_parameter,
        functions=functions,
        scanner=scanner,
        webhook_url=url,
        receiver=receiver,
        webhook_log=receiver.log_file if receiver is not None else None,
        webhooks=webhooks,
        outbox=outbox,
        settlement=settlement,
        local_mode=local_mode,
        relayer_key_id=relayer_key_id,
        relayer=relayer,
        settlement_info=settlement_info,
        queue_urls={q.logical_id: q.url for q in queues.values()},
        _moto=moto,
        _server=server,
        _thread=thread,
        _env=env,
    )
    _running.add(id(stack))
    return stack


__all__ = ["Stack", "WebhookUrlRefused", "start_stack"]
