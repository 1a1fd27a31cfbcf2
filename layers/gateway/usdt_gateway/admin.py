"""Operator CLI: merchants, API keys, webhook secrets, receiving addresses, and the scanners' status.

    TABLE_NAME=... KMS_KEY_ID=... python -m usdt_gateway.admin create-merchant --name "Shop"
    python -m usdt_gateway.admin create-key --merchant m_... [--scopes orders:read,orders:write] [--v2-only]
        [--v1-everywhere] [--v1-recv-window MS]   (both unsafe: see docs/signing.md)
    python -m usdt_gateway.admin rotate-key --key ak_... [--overlap-seconds 86400]
    python -m usdt_gateway.admin revoke-key --key ak_...
    python -m usdt_gateway.admin list-keys --merchant m_...
    python -m usdt_gateway.admin rotate-webhook-secret --merchant m_... [--overlap-seconds 86400]
    python -m usdt_gateway.admin set-xpub --merchant m_... --family evm|tron --xpub xpub...
    python -m usdt_gateway.admin set-address --merchant m_... --family evm|tron --address ... [--tag-step 0.01]
    python -m usdt_gateway.admin deploy-implementation --network eth [--key-file PATH]   (once per chain)
    python -m usdt_gateway.admin deploy-factory --network eth --treasury 0x... --owner 0x... --implementation 0x...
        [--key-file PATH]   (without a key: prints the transaction for the owner to send)
    python -m usdt_gateway.admin set-contract --merchant m_... --network eth --factory 0x... --implementation 0x...
        --treasury 0x... --owner 0x...
    python -m usdt_gateway.admin set-reuse --merchant m_... --network eth (--quarantine-hours 72 | --off)
    python -m usdt_gateway.admin status [--json] [--network eth] [--max-lag-seconds 1800] [--max-idle-seconds 300]
    python -m usdt_gateway.admin confirm-deposit --network eth --txid 0x... --log-index 0   (a held deposit)
    python -m usdt_gateway.admin reject-deposit --network eth --txid 0x... --log-index 0    (a held deposit)
    python -m usdt_gateway.admin settlement-status [--network eth] [--relayer-key-id KEY] [--recent 5]
    python -m usdt_gateway.admin release-deposits --network eth [--merchant m_...] [--balance-short]

Prints JSON. Secrets are printed once, at creation or rotation; the gateway stores them only encrypted.
Uses the caller's AWS credentials (kms:Encrypt and the table's read/write actions).

`status` asks each RPC endpoint for its head now (the endpoints of RPC_ENDPOINTS_PARAMETER or
RPC_ENDPOINTS, as the scanner reads them; it needs ssm:GetParameter with decryption), reads each
network's scan cursor, and prints a report (JSON with --json); exit code 0 when every network is
healthy, 1 when something is not (see docs/operations.md), 2 for a configuration error.

`settlement-status` prints, per network, the relayer's address (from the public key of
RELAYER_KEY_ID or --relayer-key-id: kms:GetPublicKey) and its native balance (through the first
RPC endpoint that answers with the network's chain id, as a settlement run chooses it; on Tron the
first full node, with the energy mode and fee limit), the lease and the sweep in flight, the
deposits waiting to be swept per merchant, those held (after failed sweeps, or because their
address's token balance at a final block does not cover them) and the last settlements.
`release-deposits` resets the failure count of the held ones, so the next runs sweep them again;
with --balance-short it waives the balance check of those the check holds instead (see
docs/settlement.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from usdt_gateway import (
    clock,
    contract_mode,
    cursor,
    deposits,
    merchants,
    status,
    tron_contract_mode,
    tron_energy,
    tron_energy_status,
)
from usdt_gateway.auth import READ, SCOPES, WRITE
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.chain.readers import TronNode
from usdt_gateway.chain.rpc_config import load_endpoints
from usdt_gateway.chain.tron_tx import MAX_FEE_LIMIT_SUN
from usdt_gateway.config import ConfigError, networks
from usdt_gateway.errors import GatewayError
from usdt_gateway.kms_signer import KmsSigner, SignerError
from usdt_gateway.networks import Network
from usdt_gateway.settlement import candidates, endpoint
from usdt_gateway.settlement import status as settlement_status
from usdt_gateway.settlement.records import RECENT_SETTLEMENTS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m usdt_gateway.admin",
        description=__doc__.split("\n\n")[0],
        epilog=f"Scopes (create-key --scopes): a comma-separated list of {', '.join(SCOPES)}; {READ} "
        f"reads orders, deposits and webhook deliveries, {WRITE} creates and changes them. "
        "Each command's options: python -m usdt_gateway.admin COMMAND --help.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")

    def merchant(c: argparse.ArgumentParser) -> None:
        c.add_argument("--merchant", required=True, metavar="m_...", help="the merchant's id (from create-merchant)")

    def family(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--family", choices=("evm", "tron"), required=True, help="the network family: evm (every EVM chain) or tron"
        )

    def overlap(c: argparse.ArgumentParser, what: str) -> None:
        c.add_argument(
            "--overlap-seconds",
            type=int,
            default=86_400,
            metavar="SECONDS",
            help=f"how long the old {what} stays valid next to the new one (default %(default)s; 0: not at all)",
        )

    c = command("create-merchant", "create a merchant; prints its id and webhook secret once")
    c.add_argument("--name", required=True, help="the merchant's name")
    c.add_argument("--webhook-url", metavar="URL", help="the default webhook URL (https)")
    c = command("create-key", "create an API key; prints its secret once")
    merchant(c)
    c.add_argument(
        "--scopes",
        default=",".join(SCOPES),
        metavar="SCOPE[,SCOPE]",
        help=f"comma-separated, from {', '.join(SCOPES)}; e.g. --scopes {READ} for a read-only key "
        "(default %(default)s)",
    )
    c.add_argument("--label", default="", help="a note that tells the key apart in list-keys")
    c.add_argument(
        "--rate-limit",
        type=int,
        metavar="PER_MINUTE",
        help="requests per minute for this key (default: the stack's RateLimitPerMinute)",
    )
    c.add_argument(
        "--v2-only",
        action="store_true",
        help="refuse Signature-V1 requests for this key (recommended for new integrations)",
    )
    c.add_argument(
        "--v1-everywhere",
        action="store_true",
        help="UNSAFE: accept Signature-V1 on every route, not only to create and get an order; a captured "
        "V1 request can then be replayed on another route within its window (docs/signing.md)",
    )
    c.add_argument(
        "--v1-recv-window",
        type=int,
        metavar="MS",
        help="UNSAFE: the longest receive window of a Signature-V1 request (default 5000, at most 60000); "
        "V1 does not sign Recv-Window, so a captured V1 request stays usable that long",
    )
    c = command("rotate-key", "replace an API key by a new one; prints the new secret once")
    c.add_argument("--key", required=True, metavar="ak_...", help="the API key to replace")
    overlap(c, "key")
    c = command("revoke-key", "revoke an API key now")
    c.add_argument("--key", required=True, metavar="ak_...", help="the API key to revoke")
    c = command("list-keys", "a merchant's API keys, without secrets")
    merchant(c)
    c = command("rotate-webhook-secret", "replace a merchant's webhook secret; prints the new one once")
    merchant(c)
    overlap(c, "secret")
    c = command("set-xpub", "derive each order's deposit address from an account-level xpub")
    merchant(c)
    family(c)
    c.add_argument(
        "--xpub",
        required=True,
        help="the account's extended public key (EVM m/44'/60'/0', Tron m/44'/195'/0'); never a private key",
    )
    c = command("set-address", "receive every order on one fixed address, amounts told apart by a tag")
    merchant(c)
    family(c)
    c.add_argument("--address", required=True, help="the receiving address (0x... on EVM, T... on Tron)")
    c.add_argument(
        "--tag-step",
        default="0.01",
        metavar="AMOUNT",
        help="what tells the amounts of live orders apart: 50.01, 50.02... (default %(default)s, at most 1)",
    )
    c.add_argument(
        "--max-tags",
        type=int,
        default=100,
        metavar="N",
        help="live orders of one amount at most, 1 to 10000 (default %(default)s)",
    )

    def evm_address(c: argparse.ArgumentParser, name: str, what: str) -> None:
        c.add_argument(f"--{name}", required=True, metavar="0x...|T...", help=what)

    def rpc_url(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--rpc-url",
            metavar="URL",
            help="the network's JSON-RPC endpoint, or a Tron full node's HTTP API "
            "(default: its first endpoint in RPC_ENDPOINTS)",
        )

    def key_file(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "--sender",
            metavar="T...",
            help="Tron: the account that will send the deployment (the owner_address of wallet/deploycontract)",
        )
        c.add_argument(
            "--fee-limit-sun",
            type=int,
            default=tron_contract_mode.DEPLOY_FEE_LIMIT_SUN,
            help="Tron: the most the deployment may burn for energy, in sun (default %(default)s: 1,000 TRX)",
        )
        c.add_argument(
            "--key-file",
            type=Path,
            metavar="PATH",
            help="a file holding the hex private key of a funded account that sends the deployment",
        )

    treasury_help = "where every sweep pays (fixed for the factory's life: a new treasury needs a new factory)"
    owner_help = "the merchant's key that alone can authorise refunds (it can be cold, or a KMS key)"
    implementation_help = "the chain's Deposit contract, which every deposit address clones"
    c = command(
        "deploy-implementation",
        "deploy the chain's Deposit contract (once per chain, before its first factory): prints the "
        f"unsigned transaction, or sends it from a funded key read from --key-file or ${DEPLOYER_KEY_ENV}",
    )
    c.add_argument(
        "--network",
        required=True,
        help="the network to deploy on (as in ENABLED_NETWORKS); on Tron the unsigned transaction is printed",
    )
    rpc_url(c)
    key_file(c)
    c = command(
        "deploy-factory",
        "deploy a merchant's DepositFactory: prints the unsigned transaction for the owner to send, "
        f"or sends it from a funded key read from --key-file or ${DEPLOYER_KEY_ENV} (never printed)",
    )
    c.add_argument(
        "--network",
        required=True,
        help="the network to deploy on (as in ENABLED_NETWORKS); on Tron the unsigned transaction is printed",
    )
    evm_address(c, "treasury", treasury_help)
    evm_address(c, "owner", owner_help)
    evm_address(c, "implementation", implementation_help)
    rpc_url(c)
    key_file(c)
    c = command(
        "set-contract",
        "switch a merchant's network to contract mode, after checking its factory and the Deposit "
        "implementation on chain; new orders get CREATE2 deposit addresses swept to the treasury",
    )
    merchant(c)
    c.add_argument("--network", required=True, help="the EVM or Tron network (one factory per network)")
    evm_address(c, "factory", "the merchant's DepositFactory on that network (from deploy-factory)")
    evm_address(c, "implementation", implementation_help)
    evm_address(c, "treasury", treasury_help + "; must be the factory's")
    evm_address(c, "owner", owner_help + "; must be the factory's")
    rpc_url(c)
    c = command(
        "set-reuse",
        "turn the reuse of swept deposit contracts on (with a quarantine) or off for a merchant's "
        "network in contract mode; off, every order gets a fresh deposit address",
    )
    merchant(c)
    c.add_argument("--network", required=True, help="the network in contract mode")
    choice = c.add_mutually_exclusive_group(required=True)
    choice.add_argument(
        "--quarantine-hours",
        type=int,
        metavar="H",
        help="reuse on: a swept address is watched this long before an order may take it (72 until set)",
    )
    choice.add_argument("--off", action="store_true", help="reuse off: a fresh address per order")
    c = command(
        "resume-scan",
        "restart a halted network's scan after --from-block; every deposit "
        "recorded final above it is checked against the chain again",
    )
    c.add_argument("--network", required=True, help="the halted network (as in status)")
    c.add_argument(
        "--from-block",
        type=int,
        required=True,
        help="the newest block known to be on the chain the network follows now",
    )
    c = command(
        "confirm-deposit",
        "credit a held deposit (disputed, or unverified: awaiting a second source) by hand, after "
        "checking the transaction on a block explorer; it is credited as the scanner credits",
    )
    c.add_argument("--network", required=True, help="the deposit's network (as in status)")
    c.add_argument("--txid", required=True, help="the transaction, as status lists it")
    c.add_argument("--log-index", type=int, required=True, help="the deposit's log index within the transaction")
    c = command(
        "reject-deposit",
        "close a held deposit as rejected, after finding on a block explorer that its transaction does not "
        "exist: never credited, even if an endpoint shows it again",
    )
    c.add_argument("--network", required=True, help="the deposit's network (as in status)")
    c.add_argument("--txid", required=True, help="the transaction, as status lists it")
    c.add_argument("--log-index", type=int, required=True, help="the deposit's log index within the transaction")
    c = command("status", "chain heads, scan cursors, lag and RPC endpoint health per network")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--network", action="append", help="only this network (repeatable)")
    c.add_argument(
        "--max-lag-seconds",
        type=int,
        default=status.DEFAULT_MAX_LAG_S,
        help="unhealthy when the cursor's final block is older (default %(default)s)",
    )
    c.add_argument(
        "--max-idle-seconds",
        type=int,
        default=status.DEFAULT_MAX_IDLE_S,
        help="unhealthy when the scanner has not written its cursor for longer (default %(default)s)",
    )
    c.add_argument("--timeout", type=float, default=5.0, help="seconds per RPC request (default %(default)s)")
    c = command(
        "settlement-status",
        "contract-mode settlement per network: the relayer's address and native balance, its lease "
        "and the sweep in flight, deposits waiting or held after failed sweeps, the last settlements",
    )
    c.add_argument("--network", action="append", help="only this network (repeatable; default every network)")
    c.add_argument(
        "--relayer-key-id",
        metavar="KEY",
        help="the relayer's KMS key (the stack's RelayerKeyId output; default $RELAYER_KEY_ID)",
    )
    c.add_argument(
        "--recent",
        type=int,
        default=settlement_status.RECENT,
        metavar="N",
        help=f"settlements shown, newest first (default %(default)s, at most {RECENT_SETTLEMENTS})",
    )
    c = command(
        "release-deposits",
        f"sweep again the deposits held after {candidates.MAX_FAILURES} failed sweeps: their failure "
        "count is reset to 0 (prints each one released)",
    )
    c.add_argument("--network", required=True, help="the network (as in settlement-status)")
    c.add_argument("--merchant", metavar="m_...", help="only this merchant's deposits (default: every merchant's)")
    c.add_argument(
        "--balance-short",
        action="store_true",
        help="instead, the deposits held because their address's balance does not cover them: the next sweep "
        "takes them without the balance check, and what it does not move is recorded missing",
    )
    return p


def run(argv: Sequence[str]) -> Any:
    a = _parser().parse_args(argv)
    match a.command:
        case "create-merchant":
            return merchants.create_merchant(a.name, webhook_url=a.webhook_url)
        case "create-key":
            scopes = tuple(s.strip() for s in a.scopes.split(",") if s.strip())
            return merchants.create_api_key(
                a.merchant,
                scopes,
                rate_limit=a.rate_limit,
                label=a.label,
                v2_only=a.v2_only,
                v1_everywhere=a.v1_everywhere,
                v1_recv_window_ms=a.v1_recv_window,
            )
        case "rotate-key":
            return merchants.rotate_api_key(a.key, overlap_seconds=a.overlap_seconds)
        case "revoke-key":
            merchants.revoke_api_key(a.key)
            return {"apiKey": a.key, "status": "revoked"}
        case "list-keys":
            return merchants.list_api_keys(a.merchant)
        case "rotate-webhook-secret":
            return merchants.rotate_webhook_secret(a.merchant, overlap_seconds=a.overlap_seconds)
        case "set-xpub":
            return merchants.configure_xpub(a.merchant, a.family, a.xpub)
        case "set-address":
            return merchants.configure_fixed(a.merchant, a.family, a.address, tag_step=a.tag_step, max_tags=a.max_tags)
        case "resume-scan":
            return _resume_scan(a.network, a.from_block)
        case "confirm-deposit":
            if a.network not in networks():
                raise ConfigError(f"network {a.network!r} is not enabled")
            return deposits.confirm_held(a.network, a.txid, a.log_index)
        case "reject-deposit":
            if a.network not in networks():
                raise ConfigError(f"network {a.network!r} is not enabled")
            return deposits.reject_held(a.network, a.txid, a.log_index)
        case "deploy-implementation" | "deploy-factory":
            return _deploy(a)
        case "settlement-status":
            return _settlement_status(a)
        case "release-deposits":
            return settlement_status.release(
                _settlement_network(a.network), a.merchant, balance_short=a.balance_short, now=clock.now_ms()
            )
        case "set-contract":
            tron = _family(a.network) == "tron"
            return contract_mode.configure_contract(
                a.merchant,
                a.network,
                factory=a.factory,
                implementation=a.implementation,
                treasury=a.treasury,
                owner=a.owner,
                rpc=None if tron else _rpc(a.network, a.rpc_url),
                tron_node=_tron_node(a.network, a.rpc_url) if tron else None,
            )
        case "set-reuse":
            hours = a.quarantine_hours
            return contract_mode.configure_reuse(
                a.merchant, a.network, reuse=not a.off, quarantine_s=None if hours is None else hours * 3600
            )
    raise AssertionError(a.command)


DEPLOYER_KEY_ENV = "DEPLOYER_PRIVATE_KEY"


def _rpc(network: str, url: str | None) -> JsonRpc:
    if url is None:
        specs = load_endpoints({}).get(network)
        if not specs:
            raise ConfigError(f"give --rpc-url: RPC_ENDPOINTS names no endpoint for {network!r}")
        url = specs[0].url
    return JsonRpc(url, timeout=30)


def _family(network: str) -> str | None:
    enabled = networks().get(network)
    return enabled.family if enabled is not None else None


def _tron_node(network: str, url: str | None) -> TronNode:
    """The Tron network's full node: --rpc-url, else its first endpoint (with its API key)."""
    if url is not None:
        return TronNode(url, timeout=30)
    specs = load_endpoints({}).get(network)
    if not specs:
        raise ConfigError(f"give --rpc-url: RPC_ENDPOINTS names no endpoint for {network!r}")
    return TronNode(specs[0].url, api_key=specs[0].api_key, timeout=30, label=specs[0].name)


def _deployer_key(path: Path | None) -> bytes | None:
    text = path.read_text() if path is not None else os.environ.get(DEPLOYER_KEY_ENV)
    if not text:
        return None
    try:
        key = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError("the deployer key is not 32 bytes of hex")  # the key itself is never shown
    return key


def _deploy(a: argparse.Namespace) -> dict[str, Any]:
    network = networks().get(a.network)
    if network is None:
        raise ConfigError(f"network {a.network!r} is not enabled")
    if network.family == "tron":  # the owner sends it: no key is handled for Tron
        if a.key_file is not None:
            raise ConfigError("on Tron the deployment is printed for the owner to send; --key-file is not used")
        if not 0 < a.fee_limit_sun <= MAX_FEE_LIMIT_SUN:
            raise ConfigError(f"--fee-limit-sun must be between 1 and {MAX_FEE_LIMIT_SUN}")
        if a.command == "deploy-implementation":
            return tron_contract_mode.implementation_deployment(network, sender=a.sender, fee_limit=a.fee_limit_sun)
        return tron_contract_mode.factory_deployment(
            network,
            treasury=a.treasury,
            owner=a.owner,
            implementation=a.implementation,
            sender=a.sender,
            fee_limit=a.fee_limit_sun,
        )
    if a.command == "deploy-implementation":
        deployment = contract_mode.implementation_deployment(chain_id=network.chain_id)
    else:
        deployment = contract_mode.factory_deployment(
            chain_id=network.chain_id, treasury=a.treasury, owner=a.owner, implementation=a.implementation
        )
    key = _deployer_key(a.key_file)
    if key is None:
        return {"network": a.network, "transaction": deployment, "sent": False}
    sent = contract_mode.send_deployment(_rpc(a.network, a.rpc_url), deployment, key)
    return {"network": a.network, "sent": True, **sent}


def _settlement_network(name: str) -> Network:
    network = networks().get(name)
    if network is None:
        raise ConfigError(f"network {name!r} is not enabled")
    return network


def _settlement_status(a: argparse.Namespace) -> dict[str, Any]:
    picked = [_settlement_network(n) for n in a.network] if a.network else list(networks().values())
    chosen = [n for n in picked if n.family == "evm"]
    tron = [n for n in picked if n.family == "tron"]
    if not 0 <= a.recent <= RECENT_SETTLEMENTS:
        raise ConfigError(f"--recent must be between 0 and {RECENT_SETTLEMENTS}")
    key_id = a.relayer_key_id or os.environ.get("RELAYER_KEY_ID")
    signer = KmsSigner(key_id) if key_id else None  # one key pays on every network: its address is the same
    specs = load_endpoints({})
    now = clock.now_ms()
    return {
        "networks": [
            settlement_status.gather(
                network,
                signer=signer,
                endpoints=endpoint.clients(specs.get(network.name) or [], timeout=10),
                now=now,
                recent=a.recent,
            )
            for network in chosen
        ]
        + [_tron_settlement_status(network, signer, specs, now=now, recent=a.recent) for network in tron]
    }


def _tron_settlement_status(
    network: Network, signer: KmsSigner | None, specs: dict[str, Any], *, now: int, recent: int
) -> dict[str, Any]:
    setting = tron_energy.load(networks())[network.name]
    endpoints = specs.get(network.name) or []
    node = TronNode(endpoints[0].url, api_key=endpoints[0].api_key, timeout=10) if endpoints else None
    note = (
        None
        if endpoints
        else f"no endpoint configured for {network.name} (RPC_ENDPOINTS): balance and resources not read"
    )
    address = None
    if signer is None:
        note = "no relayer key: set RELAYER_KEY_ID or give --relayer-key-id (the stack's RelayerKeyId output)"
    else:
        try:
            address = signer.tron_address
        except (ClientError, BotoCoreError, SignerError) as exc:
            note = f"the relayer key's public key cannot be read: {exc}"
    energy = tron_energy_status.status(network, setting, address=address, node=node, note=note)
    relayer = {"keyId": signer.key_id if signer else None, **energy["relayer"]}
    view = settlement_status.gather(network, signer=None, endpoints=None, now=now, recent=recent, relayer=relayer)
    return {**view, "family": "tron", "energy": energy["energy"]}


def _resume_scan(network: str, from_block: int) -> dict[str, Any]:
    if network not in networks():
        raise ConfigError(f"network {network!r} is not enabled")
    try:
        resumed = cursor.resume(network, from_block=from_block, now=clock.now_ms())
    except LookupError as exc:
        raise ConfigError(str(exc)) from exc
    except cursor.LeaseLost as exc:
        raise ConfigError(f"the cursor of {network} moved meanwhile; run the command again") from exc
    return {"network": network, "finalBlock": resumed.final_block, "rescanTo": resumed.rescan_to, "halted": False}


def _status(a: argparse.Namespace) -> int:
    statuses = status.gather(
        only=a.network, timeout_s=a.timeout, max_lag_seconds=a.max_lag_seconds, max_idle_seconds=a.max_idle_seconds
    )
    healthy = all(s.healthy for s in statuses)
    if a.json:
        print(json.dumps({"healthy": healthy, "networks": [s.to_json() for s in statuses]}, indent=2))
    else:
        print(status.render(statuses, now_ms=clock.now_ms()))
    return 0 if healthy else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if args[:1] == ["status"]:
            try:
                return _status(_parser().parse_args(args))
            except ValueError as exc:  # a --network that is not enabled
                raise ConfigError(str(exc)) from exc
        result = run(args)
    except (GatewayError, ConfigError) as exc:
        print(json.dumps({"error": getattr(exc, "code", "CONFIG_ERROR"), "message": str(exc)}), file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
