"""The offline sweep tool for xpub mode: moves the money on your xpub deposit addresses to your
treasury, with keys derived from your mnemonic on your own machine. This module is the command and
the EVM sweep; a Tron treasury (T...) selects the Tron sweep (usdt_gateway_client.tron_sweep).

    python -m usdt_gateway_client.sweep --base-url https://pay.example.com --network eth \\
        --rpc-url https://your-node --treasury 0xYourTreasury --journal sweep-eth.json [--execute]
    python -m usdt_gateway_client.sweep --base-url https://pay.example.com --network tron \\
        --rpc-url https://api.trongrid.io --treasury TYourTreasury --journal sweep-tron.json [--execute]

Secrets come from the environment (or a file), never from the command line, and never leave the
process: USDT_GATEWAY_API_KEY and USDT_GATEWAY_SECRET_KEY (the API key), USDT_SWEEP_MNEMONIC (or
--mnemonic-file) and, to execute, USDT_SWEEP_FUNDING_KEY (or --funding-key-file): the private key
of an account holding native coin, which pays each address's gas (on Tron: which delegates its
staked energy, or sends TRX for the fees). Nothing prints or logs a key.

1. Read: GET /v1/xpub/addresses lists the addresses with final money not recorded as swept.
2. Check: each address's token balance at the last final block (eth_call balanceOf at latest -
   confirmations + 1) must cover the gateway's figure; an address short of it is flagged and left
   alone (something moved its money: a sweep the journal does not know, a refund by hand). The
   key derived at m/44'/60'/account'/0/index must give the listed address.
3. Plan (printed; dry run is the default): per address, one token transfer of exactly the
   unswept units to the treasury, and the native coin to fund it: gas limit x gas price, less
   what the address already holds (nothing when it holds enough). Legacy transactions at one
   fixed gas price, so the cost is known before anything is sent.
4. Execute (--execute): fund the addresses, wait until the funding is mined, send the transfers,
   wait until they are final, record each sweep (POST /v1/xpub/sweeps, idempotent on the txid).

Resuming: every transaction is signed and written to the journal (fsync'ed, replaced atomically)
before it is broadcast, and the journal records each step's outcome. Run the same command again
after an interruption: a transaction in the journal is looked up by its hash and, when the chain
does not have it, broadcast again byte for byte (the same nonce and hash: it cannot be sent
twice). A transfer the chain has is never signed again; a mined one is followed to finality and
recorded. Keep the journal until the run ends with every address recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .client import Client
from .errors import GatewayError
from .models import XpubAddress

__all__ = ["Journal", "Plan", "Rpc", "SweepError", "Sweeper", "main"]

BALANCE_OF = "0x70a08231"
TRANSFER = "0xa9059cbb"
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
FUNDING_GAS = 21_000  # a plain native-coin transfer to an address without code
POLL_S = 1.0

# The steps of one address, in order; the journal records the last one done.
STEPS = ("planned", "funded", "sent", "final", "recorded")


class SweepError(Exception):
    """The sweep cannot go on as asked; the message says why and what to do."""


class Rpc:
    """A minimal JSON-RPC client of an EVM node (standard library only)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise SweepError("--rpc-url must be an http(s) URL")
        self.url = url
        self.timeout = timeout
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}).encode()
        # The operator's own node; the scheme is checked in __init__.
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
        if "error" in answer:
            raise SweepError(f"{method}: the node refused: {answer['error'].get('message', answer['error'])}")
        return answer.get("result")

    def number(self, method: str, params: list[Any]) -> int:
        return int(self.call(method, params), 16)


def _word(address: str) -> str:
    return address.lower().removeprefix("0x").rjust(64, "0")


def transfer_data(to: str, units: int) -> str:
    return TRANSFER + _word(to) + f"{units:064x}"


def token_balance(rpc: Rpc, token: str, holder: str, block: int | str) -> int:
    tag = hex(block) if isinstance(block, int) else block
    return int(rpc.call("eth_call", [{"to": token, "data": BALANCE_OF + _word(holder)}, tag]), 16)


class Journal:
    """What this run signed and did, per address, in a JSON file replaced atomically and fsync'ed
    on every change: written before any transaction is broadcast."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            self.entries = dict(data.get("addresses") or {})

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "addresses": self.entries}, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def update(self, key: str, **fields: Any) -> dict[str, Any]:
        entry = self.entries.setdefault(key, {})
        entry.update(fields)
        self.save()
        return entry


@dataclass
class Line:
    """One address of the plan."""

    address: XpubAddress
    final_balance: int  # token units at the final block
    native_balance: int  # wei on the address now
    gas_limit: int
    fund: int  # wei to send it: gas_limit * gas_price - native_balance, at least 0
    refused: str | None = None  # why it is left alone
    journal: dict[str, Any] | None = None  # a previous run's entry: resumed, not planned again

    @property
    def key(self) -> str:
        return f"{self.address.network}:{self.address.address}"


@dataclass
class Plan:
    network: str
    chain_id: int
    token: str
    treasury: str
    gas_price: int
    final_block: int
    lines: list[Line]
    funder: str | None
    funder_balance: int | None

    @property
    def to_sweep(self) -> list[Line]:
        return [line for line in self.lines if line.refused is None and line.journal is None]

    @property
    def units(self) -> int:
        return sum(line.address.unswept_units for line in self.to_sweep)

    @property
    def funding(self) -> int:
        return sum(line.fund for line in self.to_sweep)

    @property
    def funding_fees(self) -> int:
        return sum(FUNDING_GAS * self.gas_price for line in self.to_sweep if line.fund)

    @property
    def max_gas(self) -> int:
        """What the transfers may burn at most (their gas limits at the fixed price)."""
        return sum(line.gas_limit * self.gas_price for line in self.to_sweep)


def _units(value: int, decimals: int) -> str:
    whole, frac = divmod(value, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)


def _eth(wei: int) -> str:
    return _units(wei, 18)


class Sweeper:
    """Plans and carries out one network's sweep. `signer(index)` is the local account (an
    eth_account LocalAccount) of derivation index `index`; `funder` pays the gas. `on_step(key,
    step)` is called after each step: fund-signed, fund-sent, funded, transfer-signed, sent, final,
    recorded (each journaled before; tests stop the run there)."""

    def __init__(
        self,
        client: Client,
        rpc: Rpc,
        journal: Journal,
        *,
        network: str,
        treasury: str,
        signer: Callable[[int], Any],
        funder: Any | None,
        confirmations: int,
        gas_price: int | None = None,
        out: Callable[[str], None] = print,
        on_step: Callable[[str, str], None] = lambda key, step: None,
    ) -> None:
        self.client = client
        self.rpc = rpc
        self.journal = journal
        self.network = network
        self.treasury = treasury
        self.signer = signer
        self.funder = funder
        self.confirmations = max(1, confirmations)
        self.gas_price = gas_price
        self.out = out
        self.on_step = on_step

    # --- planning ------------------------------------------------------------------------------

    def final_block(self) -> int:
        return self.rpc.number("eth_blockNumber", []) - self.confirmations + 1

    def plan(self) -> Plan:
        listed = [a for a in self.client.list_xpub_addresses(self.network) if a.network == self.network]
        if any(a.address.startswith("T") for a in listed):
            raise SweepError(f"{self.network} is a Tron network: give a Tron treasury (T...) to sweep it")
        chain_id = self.rpc.number("eth_chainId", [])
        gas_price = self.gas_price or self.rpc.number("eth_gasPrice", [])
        final = self.final_block()
        token = listed[0].token_contract if listed else ""
        lines = []
        for entry in listed:
            if entry.chain_id != chain_id:
                raise SweepError(
                    f"the node is on chain {chain_id}, the gateway's {self.network} on {entry.chain_id}: "
                    "wrong --rpc-url"
                )
            lines.append(self._line(entry, final, gas_price))
        # Addresses a previous run left unfinished, even when the gateway no longer lists them
        # (swept, not recorded yet): resumed first.
        listed_keys = {line.key for line in lines}
        for key, journaled in self.journal.entries.items():
            if key.startswith(f"{self.network}:") and key not in listed_keys and journaled["step"] != "recorded":
                lines.append(self._resumed_line(journaled))
        funder = self.funder.address if self.funder is not None else None
        funder_balance = self.rpc.number("eth_getBalance", [funder, "latest"]) if funder else None
        return Plan(self.network, chain_id, token, self.treasury, gas_price, final, lines, funder, funder_balance)

    def _resumed_line(self, entry: Mapping[str, Any]) -> Line:
        address = XpubAddress.from_dict(entry["listed"])
        return Line(address, 0, 0, int(entry["gasLimit"]), int(entry["fund"]), journal=dict(entry))

    def _line(self, entry: XpubAddress, final: int, gas_price: int) -> Line:
        journaled = self.journal.entries.get(f"{entry.network}:{entry.address}")
        if journaled is not None and journaled["step"] != "recorded":
            # Carried on as the earlier run planned it, whatever was credited since: the next run sweeps that.
            return self._resumed_line(journaled)
        balance = token_balance(self.rpc, entry.token_contract, entry.address, final)
        native = self.rpc.number("eth_getBalance", [entry.address, "latest"])
        line = Line(entry, balance, native, 0, 0)
        if balance < entry.unswept_units:
            line.refused = (
                f"SHORT: holds {balance} units at block {final}, the gateway counts {entry.unswept_units} unswept; "
                "left alone (check the address's transfers, then record or resolve by hand)"
            )
            return line
        account = self.signer(entry.index)
        if account.address.lower() != entry.address.lower():
            line.refused = (
                f"the key at derivation index {entry.index} gives another address: wrong mnemonic or --account"
            )
            return line
        data = transfer_data(self.treasury, entry.unswept_units)
        line.gas_limit = self.rpc.number(
            "eth_estimateGas", [{"from": entry.address, "to": entry.token_contract, "data": data}]
        )
        line.fund = max(0, line.gas_limit * gas_price - native)
        return line

    def print_plan(self, plan: Plan) -> None:
        decimals = plan.lines[0].address.decimals if plan.lines else 6
        self.out(f"network {plan.network} (chain {plan.chain_id}), token {plan.token}, treasury {plan.treasury}")
        self.out(f"final block {plan.final_block}, gas price {plan.gas_price} wei (legacy transactions)")
        for line in plan.lines:
            a = line.address
            head = f"  [{a.index}] {a.address}"
            if line.journal is not None:
                self.out(f"{head}: resuming from step '{line.journal['step']}' of an earlier run")
            elif line.refused:
                self.out(f"{head}: REFUSED: {line.refused}")
            else:
                extra = line.final_balance - a.unswept_units
                self.out(
                    f"{head}: sweep {_units(a.unswept_units, decimals)} USDT ({a.unswept_units} units; on chain "
                    f"{line.final_balance}{f', {extra} not counted by the gateway stay' if extra else ''}); "
                    f"gas limit {line.gas_limit}, holds {line.native_balance} wei, fund {line.fund} wei"
                )
        self.out(
            f"total: {len(plan.to_sweep)} transfers, {_units(plan.units, decimals)} USDT ({plan.units} units); "
            f"funding {_eth(plan.funding)} + funding fees {_eth(plan.funding_fees)} native coin; the transfers "
            f"burn at most {_eth(plan.max_gas)} of the funding"
        )
        if plan.funder is not None and plan.funder_balance is not None:
            self.out(f"funder {plan.funder} holds {_eth(plan.funder_balance)}")

    # --- execution -----------------------------------------------------------------------------

    def execute(self, plan: Plan) -> int:
        """Carry the plan (and any unfinished earlier run) to the end; the number of addresses
        recorded as swept."""
        if plan.to_sweep and self.funder is None:
            raise SweepError("--execute needs the funding key (USDT_SWEEP_FUNDING_KEY or --funding-key-file)")
        needed = plan.funding + plan.funding_fees
        if plan.funder_balance is not None and needed > plan.funder_balance:
            raise SweepError(f"the funder holds {plan.funder_balance} wei; the plan needs {needed}")
        for line in plan.to_sweep:
            self.journal.update(
                line.key,
                step="planned",
                listed=dict(line.address.raw),
                gasLimit=line.gas_limit,
                gasPrice=plan.gas_price,
                fund=line.fund,
                treasury=self.treasury,
            )
        active = [line for line in plan.lines if line.refused is None]
        for line in active:
            self._fund(line, plan)
        for line in active:
            self._wait_funded(line)
        for line in active:
            self._send(line)
        for line in active:
            self._wait_final(line)
        recorded = 0
        for line in active:
            recorded += self._record(line)
        return recorded

    def _entry(self, line: Line) -> dict[str, Any]:
        return self.journal.entries[line.key]

    def _step(self, line: Line) -> int:
        return STEPS.index(self._entry(line)["step"])

    def _journal(self, line: Line, step: str | None = None, **fields: Any) -> None:
        if step is not None:
            fields["step"] = step
        self.journal.update(line.key, **fields)
        if step is not None:
            self.on_step(line.key, step)

    def _fund(self, line: Line, plan: Plan) -> None:
        entry = self._entry(line)
        if self._step(line) > 0 or int(entry["fund"]) == 0:
            return
        if "fundTx" in entry:
            # Signed by an interrupted run: on chain before the next funding takes the funder's next nonce.
            self._broadcast(entry["fundTx"])
            return
        assert self.funder is not None
        nonce = self.rpc.number("eth_getTransactionCount", [self.funder.address, "pending"])
        tx = {
            "chainId": plan.chain_id,
            "nonce": nonce,
            "gasPrice": int(entry["gasPrice"]),
            "gas": FUNDING_GAS,
            "to": line.address.address,
            "value": int(entry["fund"]),
            "data": b"",
        }
        signed = self.funder.sign_transaction(tx)
        # Journaled before it is broadcast: a run interrupted after this line sends these very bytes.
        self._journal(line, None, fundTx=_signed(signed, nonce))
        self.on_step(line.key, "fund-signed")
        self._broadcast(self._entry(line)["fundTx"])
        self.on_step(line.key, "fund-sent")

    def _wait_funded(self, line: Line) -> None:
        entry = self._entry(line)
        if self._step(line) >= 1:
            return
        if "fundTx" in entry:
            receipt = self._mined(entry["fundTx"], self.funder.address if self.funder else None)
            if receipt is None:
                raise SweepError(
                    f"{line.address.address}: its funding transaction {entry['fundTx']['hash']} is not on chain and "
                    "the funder's nonce moved past it; check the funder's transactions, then delete this address "
                    "from the journal to plan it again"
                )
        self._journal(line, "funded")

    def _send(self, line: Line) -> None:
        entry = self._entry(line)
        if self._step(line) >= 2:
            return
        if "transferTx" not in entry:
            account = self.signer(line.address.index)
            nonce = self.rpc.number("eth_getTransactionCount", [line.address.address, "pending"])
            tx = {
                "chainId": line.address.chain_id,
                "nonce": nonce,
                "gasPrice": int(entry["gasPrice"]),
                "gas": int(entry["gasLimit"]),
                "to": line.address.token_contract,
                "value": 0,
                "data": transfer_data(entry["treasury"], line.address.unswept_units),
            }
            signed = account.sign_transaction(tx)
            self._journal(line, None, transferTx=_signed(signed, nonce), units=line.address.unswept_units)
            self.on_step(line.key, "transfer-signed")
        self._broadcast(self._entry(line)["transferTx"])
        self._journal(line, "sent")

    def _wait_final(self, line: Line) -> None:
        entry = self._entry(line)
        if self._step(line) >= 3:
            return
        tx = entry["transferTx"]
        receipt = self._mined(tx, line.address.address)
        if receipt is None:
            raise SweepError(
                f"{line.address.address}: its transfer {tx['hash']} is not on chain and the address's nonce moved "
                "past it; something else spent from the address. Nothing more is sent from it"
            )
        if int(receipt["status"], 16) != 1:
            raise SweepError(f"{line.address.address}: its transfer {tx['hash']} reverted; nothing recorded")
        while True:
            number = int(receipt["blockNumber"], 16)
            if number <= self.final_block():
                again = self.rpc.call("eth_getTransactionReceipt", [tx["hash"]])
                if again is not None and again["blockHash"] == receipt["blockHash"]:
                    break
                receipt = self._mined(tx, line.address.address) or receipt  # moved by a reorg: follow it
                continue
            time.sleep(POLL_S)
        moved = _moved(receipt, line.address.token_contract, line.address.address, entry["treasury"])
        self._journal(line, "final", moved=moved, block=int(receipt["blockNumber"], 16))

    def _record(self, line: Line) -> int:
        entry = self._entry(line)
        if self._step(line) >= 4:
            return 0
        txid = entry["transferTx"]["hash"]
        sweep = self.client.record_xpub_sweep(self.network, line.address.address, txid, int(entry["moved"]))
        self._journal(line, "recorded", recordedAt=sweep.recorded_at.isoformat())
        self.out(f"  [{line.address.index}] {line.address.address}: swept {sweep.units} units in {txid}, recorded")
        return 1

    # --- transactions --------------------------------------------------------------------------

    def _broadcast(self, tx: Mapping[str, Any]) -> None:
        """Send the journaled bytes, unless the chain has them already. A refusal for a nonce
        already used is left to _mined, which tells whether it was these bytes that used it."""
        if self.rpc.call("eth_getTransactionByHash", [tx["hash"]]) is not None:
            return
        try:
            self.rpc.call("eth_sendRawTransaction", [tx["raw"]])
        except SweepError as exc:
            if "nonce" not in str(exc).lower() and "known" not in str(exc).lower():
                raise

    def _mined(self, tx: Mapping[str, Any], sender: str | None) -> dict[str, Any] | None:
        """The receipt of the journaled transaction once mined; None when it never can be (its
        sender's nonce was used by another transaction)."""
        while True:
            receipt = self.rpc.call("eth_getTransactionReceipt", [tx["hash"]])
            if receipt is not None:
                return dict(receipt)
            if self.rpc.call("eth_getTransactionByHash", [tx["hash"]]) is None:
                if sender is not None and self.rpc.number("eth_getTransactionCount", [sender, "latest"]) > tx["nonce"]:
                    return None
                self._broadcast(tx)  # dropped from the pool (or never sent): the same bytes again
            time.sleep(POLL_S)


def _signed(signed: Any, nonce: int) -> dict[str, Any]:
    return {"raw": "0x" + bytes(signed.raw_transaction).hex(), "hash": "0x" + bytes(signed.hash).hex(), "nonce": nonce}


def _moved(receipt: Mapping[str, Any], token: str, sender: str, to: str) -> int:
    """The token units the receipt's Transfer logs moved from `sender` to `to`."""
    total = 0
    for log in receipt.get("logs") or []:
        topics = [t.lower() for t in log.get("topics") or []]
        if (
            log.get("address", "").lower() == token.lower()
            and len(topics) == 3
            and topics[0] == TRANSFER_TOPIC
            and topics[1] == "0x" + _word(sender)
            and topics[2] == "0x" + _word(to)
        ):
            total += int(log["data"], 16)
    return total


# --- the command ---------------------------------------------------------------------------------


def _secret(env: str, file: str | None, what: str, required: bool = True) -> str | None:
    if file:
        return Path(file).read_text(encoding="utf-8").strip()
    value = os.environ.get(env)
    if value is None and required:
        raise SweepError(f"{what}: set {env} or pass its file")
    return value.strip() if value else None


def hd_signer(mnemonic: str, coin: int, account: int) -> Callable[[int], Any]:
    """The local account (eth_account) of each derivation index under m/44'/coin'/account'/0: the
    xpub the gateway holds is the one of m/44'/coin'/account', and its addresses are the children
    0/index below it (hdwallet.py)."""
    from eth_account import Account  # the "signing" extra

    Account.enable_unaudited_hdwallet_features()
    cache: dict[int, Any] = {}

    def signer(index: int) -> Any:
        if index not in cache:
            cache[index] = Account.from_mnemonic(mnemonic, account_path=f"m/44'/{coin}'/{account}'/0/{index}")
        return cache[index]

    return signer


def evm_signer(mnemonic: str, account: int) -> Callable[[int], Any]:
    """The local account of each derivation index under m/44'/60'/account'/0."""
    return hd_signer(mnemonic, 60, account)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m usdt_gateway_client.sweep",
        description="Sweep your xpub deposit addresses to your treasury. Dry run unless --execute.",
    )
    parser.add_argument("--base-url", required=True, help="the gateway's API base URL")
    parser.add_argument("--network", required=True, help="a network of the gateway, e.g. eth, bsc, polygon, tron")
    parser.add_argument(
        "--rpc-url", required=True, help="your node for that network: JSON-RPC (EVM) or a full node's HTTP API (Tron)"
    )
    parser.add_argument("--treasury", required=True, help="where the money goes (0x address; T... on Tron)")
    parser.add_argument("--journal", required=True, help="the run's journal file (kept to resume)")
    parser.add_argument("--account", type=int, default=0, help="the BIP-44 account of your xpub (default 0)")
    parser.add_argument(
        "--confirmations", type=int, default=64, help="EVM: blocks that make a block final (default 64)"
    )
    parser.add_argument("--gas-price", type=int, help="EVM: wei per gas (default: the node's eth_gasPrice)")
    parser.add_argument(
        "--mode",
        choices=("auto", "delegate", "burn"),
        default="auto",
        help="Tron: delegate the funding account's staked energy, or burn TRX sent to each address "
        "(default auto: delegate while its stake covers the transfers, else burn)",
    )
    parser.add_argument("--energy-price", type=int, help="Tron: sun per energy (default: the chain's getEnergyFee)")
    parser.add_argument(
        "--max-fee-trx",
        type=Decimal,
        default=Decimal(100),
        help="Tron: the most one transfer may burn for energy (its fee_limit cap, default 100)",
    )
    parser.add_argument(
        "--delegation-margin",
        type=int,
        default=2,
        help="Tron: percent of energy delegated beyond the estimate (default 2; staked TRX, taken back)",
    )
    parser.add_argument("--mnemonic-file", help="instead of USDT_SWEEP_MNEMONIC")
    parser.add_argument("--funding-key-file", help="instead of USDT_SWEEP_FUNDING_KEY (hex private key)")
    parser.add_argument("--execute", action="store_true", help="send the transactions (default: print the plan)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, on_step: Callable[[str, str], None] | None = None) -> int:
    args = parse_args(argv)
    try:
        tron = args.treasury.startswith("T")
        if not tron and not (args.treasury.startswith("0x") and len(args.treasury) == 42):
            raise SweepError("--treasury must be an EVM address (0x and 40 hex digits) or a Tron address (T...)")
        api_key = _secret("USDT_GATEWAY_API_KEY", None, "the API key")
        secret_key = _secret("USDT_GATEWAY_SECRET_KEY", None, "the API secret key")
        mnemonic = _secret("USDT_SWEEP_MNEMONIC", args.mnemonic_file, "the mnemonic")
        funding_key = _secret("USDT_SWEEP_FUNDING_KEY", args.funding_key_file, "the funding key", required=args.execute)
        assert api_key and secret_key and mnemonic
        funder = None
        if funding_key:
            from eth_account import Account

            funder = Account.from_key(funding_key)
        if tron:
            from .tron_sweep import run

            return run(args, Client(args.base_url, api_key, secret_key), mnemonic, funder, on_step=on_step)
        sweeper = Sweeper(
            Client(args.base_url, api_key, secret_key),
            Rpc(args.rpc_url),
            Journal(Path(args.journal)),
            network=args.network,
            treasury=args.treasury,
            signer=evm_signer(mnemonic, args.account),
            funder=funder,
            confirmations=args.confirmations,
            gas_price=args.gas_price,
            on_step=on_step or (lambda key, step: None),
        )
        plan = sweeper.plan()
        sweeper.print_plan(plan)
        refused = any(line.refused for line in plan.lines)
        if not args.execute:
            print("dry run: nothing sent; run again with --execute to sweep")
        else:
            recorded = sweeper.execute(plan)
            print(f"done: {recorded} sweeps recorded")
        return 3 if refused else 0
    except (SweepError, GatewayError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
