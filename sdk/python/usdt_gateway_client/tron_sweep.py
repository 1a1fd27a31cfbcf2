"""The xpub sweep tool on Tron: moves the USDT on your xpub deposit addresses to your treasury,
with keys derived from your mnemonic on your own machine (`python -m usdt_gateway_client.sweep`
with a `T...` treasury; docs/settlement.md "xpub mode: the offline sweep tool").

Every TRC-20 transfer costs energy (about 64,285 to an address that holds USDT, 130,285 to one
that does not: chains.md §2.7, from docs.catfee.io) and bandwidth (its size in bytes; every
activated account has 600 free a day). A deposit address holds no TRX and is usually not even
activated (an address that only received TRC-20 does not exist on chain). Two ways to pay, per
address, the cheaper available one by default (`--mode auto`):

- delegate: your resource account (the funding key), which has TRX staked for energy with Stake
  2.0, activates the address if needed (1 sun; it pays the 1 TRX account fee and 0.1 TRX or its
  staked bandwidth), delegates it the energy (DelegateResource), the address transfers its USDT,
  and the delegation is taken back (UnDelegateResource). No TRX is burned for energy; the energy
  the transfer used comes back to the resource account as used and recovers within a day. When
  the address's free bandwidth is used up for the day, bandwidth is delegated too if the resource
  account has it staked, else the address is sent the TRX its bytes burn.
- burn: the resource account sends the address exactly the TRX its transfer burns: energy x the
  chain's energy price (getEnergyFee), and bandwidth when the free bandwidth does not cover it;
  the transfer's fee_limit is that energy's price. Nothing more is left on the address than the
  estimate's difference from what the transfer really used.

Steps per address, each transaction signed here and written to the journal (fsync'ed) before it is
broadcast, each waited on until its block is solidified and its receipt read:
fund (or activate) -> delegate -> transfer -> undelegate -> record (POST /v1/xpub/sweeps).
The addresses go through each step together; when the treasury holds no USDT yet, the first
address goes through alone first, so the others are measured (and funded) at the cheaper figure.

A transaction is built by the node and signed only once it is checked to be exactly the call
asked for (usdt_gateway_client.tron.built_transaction). A journaled transaction is broadcast again
byte for byte while it can still be mined; only once the solidified block is past its expiration
with no block holding it is a new one built. A delegation is always taken back: after the
transfer (whatever its result), after an error before the transfer was signed, and, after a
crash, by the next run of the same command.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import Client
from .models import XpubAddress
from .sweep import Journal, SweepError, _units, hd_signer
from .tron import (
    NodeLied,
    TronCall,
    TronNodeClient,
    TronNodeError,
    from_base58check,
    hex41,
    moved_units,
    raw_data_bytes,
    sign_transaction,
    transfer_data,
    tron_address,
    tx_bandwidth,
)

__all__ = ["TronLine", "TronPlan", "TronSweeper", "tron_signer"]

TRX = 1_000_000  # sun
POLL_S = 3.0  # a Tron block
ENERGY_TO_HOLDER = 64_285  # chains.md §2.7 (docs.catfee.io "USDT transfer energy on Tron")
ENERGY_TO_NEW_HOLDER = 130_285
FREE_BANDWIDTH = 600  # per activated account and day (resource.md)
DEFAULT_FEES = {
    "getEnergyFee": 100,
    "getTransactionFee": 1_000,
    "getCreateAccountFee": 100_000,
    "getCreateNewAccountFeeInSystemContract": 1_000_000,
}
ACTIVATION_SUN = 1  # what activating an address leaves on it in delegate mode

# The steps of one address, in order; the journal records the last one done. "failed" (the
# transfer failed on chain) and "abandoned" (stopped before its transfer, delegation returned)
# end it too: the next run plans the address again.
STEPS = ("planned", "funded", "delegated", "transferred", "undelegated", "recorded")
ENDED = ("recorded", "failed", "abandoned")
DELEGATIONS = {"delegateEnergy": "ENERGY", "delegateBandwidth": "BANDWIDTH"}
UNDELEGATIONS = {"undelegateEnergy": "delegateEnergy", "undelegateBandwidth": "delegateBandwidth"}
UNDO = {delegation: name for name, delegation in UNDELEGATIONS.items()}


def _trx(sun: int) -> str:
    return _units(sun, 6)


def stake_for(amount: int, total_limit: int, total_weight: int) -> int:
    """The sun of staked TRX (whole TRX, at least 1) whose energy or bandwidth covers `amount`, as
    java-tron computes a stake's share: int(TRX x total_limit / total_weight)."""
    if total_limit <= 0 or total_weight <= 0:
        raise SweepError("the node reports no network energy or bandwidth totals (getaccountresource)")
    trx = max(1, -(-amount * total_weight // total_limit))
    while int(trx * (total_limit / total_weight)) < amount:
        trx += 1
    return trx * TRX


@dataclass
class TronLine:
    """One address of the plan (sun, energy, bytes)."""

    address: XpubAddress
    final_balance: int  # token units at the solidified block
    trx: int  # sun on the address now
    activated: bool
    free_bandwidth: int  # bytes its transfer can use without burning
    energy: int = 0
    energy_source: str = ""
    bandwidth: int = 0  # the transfer's bytes
    batch: int = 1
    mode: str = "burn"
    why: str = ""
    fee_limit: int = 0
    fund: int = 0  # sun sent to it: its burn (burn), or ACTIVATION_SUN to activate it (delegate)
    bandwidth_burn: int = 0  # sun it burns for bandwidth
    delegate_energy: int = 0  # sun of staked TRX delegated
    delegate_bandwidth: int = 0
    funder_burn: int = 0  # sun the resource account burns for this address (activation, bandwidth)
    refused: str | None = None
    journal: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.address.network}:{self.address.address}"

    @property
    def burn(self) -> int:
        """Sun the address burns: energy (burn mode) and bandwidth."""
        return (self.fee_limit if self.mode == "burn" else 0) + self.bandwidth_burn

    @property
    def leftover(self) -> int:
        """Sun left on the address if the transfer uses the energy estimated."""
        return self.trx + self.fund - self.burn


@dataclass
class TronPlan:
    network: str
    chain_id: int
    token: str
    treasury: str
    treasury_holds: bool
    fees: dict[str, int]
    solid_block: int
    lines: list[TronLine]
    funder: str | None
    funder_trx: int | None
    can_delegate_energy: int  # sun
    can_delegate_bandwidth: int
    mode: str

    @property
    def energy_price(self) -> int:
        return self.fees["getEnergyFee"]

    @property
    def to_sweep(self) -> list[TronLine]:
        return [line for line in self.lines if line.refused is None and line.journal is None]

    @property
    def units(self) -> int:
        return sum(line.address.unswept_units for line in self.to_sweep)

    @property
    def sent(self) -> int:
        return sum(line.fund for line in self.to_sweep)

    @property
    def funder_burn(self) -> int:
        return sum(line.funder_burn for line in self.to_sweep)

    @property
    def funder_needs(self) -> int:
        return self.sent + self.funder_burn


def tron_signer(mnemonic: str, account: int) -> Callable[[int], Any]:
    """The local account of each derivation index under m/44'/195'/account'/0 (the same secp256k1
    key as on EVM at that path: its `address` is the EVM form; tron.tron_address gives T...)."""
    return hd_signer(mnemonic, 195, account)


class TronSweeper:
    """Plans and carries out one Tron network's sweep. `signer(index)` is the local account of a
    derivation index; `funder` (an eth_account LocalAccount of the resource account's key) pays
    activations and burned TRX and delegates its staked energy. `on_step(key, step)` is called
    after each step: fund-signed, fund-sent, funded, delegate-signed, delegate-sent, delegated,
    transfer-signed, transfer-sent, transferred, undelegate-signed, undelegate-sent, undelegated,
    recorded (each journaled before; tests stop the run there). `wait()` passes time until the
    chain may have moved (a block)."""

    def __init__(
        self,
        client: Client,
        node: TronNodeClient,
        journal: Journal,
        *,
        network: str,
        treasury: str,
        signer: Callable[[int], Any],
        funder: Any | None,
        mode: str = "auto",
        energy_price: int | None = None,
        max_fee_sun: int = 100 * TRX,
        delegation_margin_percent: int = 2,
        out: Callable[[str], None] = print,
        on_step: Callable[[str, str], None] = lambda key, step: None,
        wait: Callable[[], None] = lambda: time.sleep(POLL_S),
    ) -> None:
        if mode not in ("auto", "delegate", "burn"):
            raise SweepError("--mode is auto, delegate or burn")
        try:
            from_base58check(treasury)
        except ValueError as exc:
            raise SweepError(f"--treasury: {exc}") from None
        self.client = client
        self.node = node
        self.journal = journal
        self.network = network
        self.treasury = treasury
        self.signer = signer
        self.funder = funder
        self.funder_address = tron_address(funder.address) if funder is not None else None
        self.mode = mode
        self.energy_price = energy_price
        self.max_fee_sun = max_fee_sun
        self.margin = delegation_margin_percent
        self.out = out
        self.on_step = on_step
        self.wait = wait
        self._fees: dict[str, int] = dict(DEFAULT_FEES)

    # --- planning ------------------------------------------------------------------------------

    def plan(self) -> TronPlan:
        listed = [a for a in self.client.list_xpub_addresses(self.network) if a.network == self.network]
        if any(not a.address.startswith("T") for a in listed):
            raise SweepError(f"{self.network} is not a Tron network: give an EVM treasury (0x...) for it")
        chain_id = self.node.chain_id()
        for entry in listed:
            if entry.chain_id != chain_id:
                raise SweepError(
                    f"the node is on chain {chain_id}, the gateway's {self.network} on {entry.chain_id}: "
                    "wrong --rpc-url"
                )
        params = self.node.chain_parameters()
        self._fees = {key: params.get(key, default) for key, default in DEFAULT_FEES.items()}
        if self.energy_price is not None:
            self._fees["getEnergyFee"] = self.energy_price
        solid, _ = self.node.solid_block()
        token = listed[0].token_contract if listed else ""
        treasury_holds = bool(token) and self.node.token_balance(token, self.treasury) > 0
        lines: list[TronLine] = []
        for entry in listed:
            journaled = self.journal.entries.get(f"{entry.network}:{entry.address}")
            if journaled is not None and journaled.get("step") not in ENDED:
                lines.append(self._resumed_line(journaled))
            else:
                lines.append(self._line(entry, token, solid))
        listed_keys = {line.key for line in lines}
        for key, journaled in self.journal.entries.items():
            if key.startswith(f"{self.network}:") and key not in listed_keys and journaled.get("step") not in ENDED:
                lines.append(self._resumed_line(journaled))
        funder_trx = None
        can_energy = can_bandwidth = 0
        resources: dict[str, int] = {}
        if self.funder_address is not None:
            if self.funder_address in {line.address.address for line in lines} or self.funder_address == self.treasury:
                raise SweepError("the funding key is a deposit address or the treasury: use an account of its own")
            funder_trx = int(self.node.account(self.funder_address).get("balance", 0))
            resources = self.node.resources(self.funder_address)
            if self.mode != "burn":
                can_energy = self.node.can_delegate(self.funder_address, "ENERGY")
                can_bandwidth = self.node.can_delegate(self.funder_address, "BANDWIDTH")
        plan = TronPlan(
            self.network,
            chain_id,
            token,
            self.treasury,
            treasury_holds,
            dict(self._fees),
            solid,
            lines,
            self.funder_address,
            funder_trx,
            can_energy,
            can_bandwidth,
            self.mode,
        )
        self._assign(plan, resources)
        return plan

    def _resumed_line(self, entry: Mapping[str, Any]) -> TronLine:
        line = TronLine(XpubAddress.from_dict(entry["listed"]), 0, 0, True, 0, journal=dict(entry))
        line.mode, line.batch, line.energy = str(entry["mode"]), int(entry["batch"]), int(entry["energy"])
        line.fee_limit, line.fund = int(entry["feeLimit"]), int(entry["fund"])
        return line

    def _line(self, entry: XpubAddress, token: str, solid: int) -> TronLine:
        balance = self.node.token_balance(token, entry.address)
        account = self.node.account(entry.address)
        activated = bool(account)
        free = FREE_BANDWIDTH
        if activated:
            res = self.node.resources(entry.address)
            free = max(res["NetLimit"] - res["NetUsed"], res["freeNetLimit"] - res["freeNetUsed"], 0)
        line = TronLine(entry, balance, int(account.get("balance", 0)), activated, free)
        if balance < entry.unswept_units:
            line.refused = (
                f"SHORT: holds {balance} units at block {solid}, the gateway counts {entry.unswept_units} unswept; "
                "left alone (check the address's transfers, then record or resolve by hand)"
            )
            return line
        if tron_address(self.signer(entry.index).address) != entry.address:
            line.refused = (
                f"the key at derivation index {entry.index} gives another address: wrong mnemonic or --account"
            )
        return line

    def _measure(self, line: TronLine) -> None:
        """The transfer's energy (the node's estimate, else the documented figure) and bytes."""
        a = line.address
        estimate = self.node.transfer_energy(a.address, a.token_contract, self.treasury, a.unswept_units)
        if estimate is not None:
            line.energy, line.energy_source = estimate, "node estimate"
        else:
            holds = self.node.token_balance(a.token_contract, self.treasury) > 0
            line.energy = ENERGY_TO_HOLDER if holds else ENERGY_TO_NEW_HOLDER
            line.energy_source = "documented figure (the node gave no estimate)"
        line.fee_limit = line.energy * self._fees["getEnergyFee"]
        data = transfer_data(self.treasury, a.unswept_units)
        call = TronCall("TriggerSmartContract", hex41(a.address), hex41(a.token_contract), data=data)
        line.bandwidth = _size(call, line.fee_limit)

    def _assign(self, plan: TronPlan, resources: Mapping[str, int]) -> None:
        """Each new address's figures, batch and mode: delegate while the resource account's
        delegatable stake covers it (auto, delegate), else burn (auto, burn)."""
        fresh = [line for line in plan.lines if line.refused is None and line.journal is None]
        energy_left, bandwidth_left = plan.can_delegate_energy, plan.can_delegate_bandwidth
        funder_staked = max(resources.get("NetLimit", 0) - resources.get("NetUsed", 0), 0)
        funder_free = max(resources.get("freeNetLimit", 0) - resources.get("freeNetUsed", 0), 0)
        split = not plan.treasury_holds and len(fresh) > 1
        for position, line in enumerate(fresh):
            self._measure(line)
            if split and position > 0:
                # Measured while the treasury holds nothing; the first transfer changes that.
                line.batch = 2
                line.energy = max(line.energy - (ENERGY_TO_NEW_HOLDER - ENERGY_TO_HOLDER), 1)
                line.energy_source += ", less the new-holder surcharge (measured again before funding)"
                line.fee_limit = line.energy * plan.energy_price
            if line.fee_limit > self.max_fee_sun:
                line.refused = (
                    f"its transfer may burn {_trx(line.fee_limit)} TRX of energy, above --max-fee-trx "
                    f"{_trx(self.max_fee_sun)}"
                )
                continue
            short_bandwidth = line.free_bandwidth < line.bandwidth
            energy_sun = stake_for(
                line.energy * (100 + self.margin) // 100,
                resources.get("TotalEnergyLimit", 0) or 1,
                resources.get("TotalEnergyWeight", 0) or 1,
            )
            bandwidth_sun = (
                stake_for(
                    line.bandwidth, resources.get("TotalNetLimit", 0) or 1, resources.get("TotalNetWeight", 0) or 1
                )
                if short_bandwidth
                else 0
            )
            if plan.mode != "burn" and plan.funder is not None and energy_sun <= energy_left:
                energy_left -= energy_sun
                line.mode, line.delegate_energy = "delegate", energy_sun
                line.why = "the resource account's staked energy covers it: no TRX burned for energy"
                if short_bandwidth and bandwidth_sun <= bandwidth_left:
                    bandwidth_left -= bandwidth_sun
                    line.delegate_bandwidth = bandwidth_sun
                elif short_bandwidth:  # its free bandwidth is used up today: it burns the bytes
                    line.bandwidth_burn = line.bandwidth * plan.fees["getTransactionFee"]
                line.fund = max(0, line.bandwidth_burn - line.trx) or (0 if line.activated else ACTIVATION_SUN)
            elif plan.mode == "delegate":
                line.refused = (
                    f"--mode delegate: the resource account can delegate {_trx(energy_left)} TRX of staked energy "
                    f"more; this transfer needs {_trx(energy_sun)}"
                )
                continue
            else:
                line.mode = "burn"
                line.why = (
                    "--mode burn"
                    if plan.mode == "burn"
                    else "no resource account given"
                    if plan.funder is None
                    else "not enough delegatable staked energy left"
                )
                line.bandwidth_burn = line.bandwidth * plan.fees["getTransactionFee"] if short_bandwidth else 0
                line.fund = max(0, line.fee_limit + line.bandwidth_burn - line.trx)
                if not line.activated and line.fund == 0:
                    line.fund = ACTIVATION_SUN
            # The resource account's own costs: activating (1 TRX, and 0.1 TRX unless its staked
            # bandwidth pays), then the bandwidth of each of its transactions.
            burn = 0
            for call in self._funder_calls(line):
                size = _size(call)
                if call.kind == "TransferContract" and not line.activated:
                    if funder_staked >= size:
                        funder_staked -= size
                    else:
                        burn += plan.fees["getCreateAccountFee"]
                    burn += plan.fees["getCreateNewAccountFeeInSystemContract"]
                elif funder_staked >= size:
                    funder_staked -= size
                elif funder_free >= size:
                    funder_free -= size
                else:
                    burn += size * plan.fees["getTransactionFee"]
            line.funder_burn = burn

    def _funder_calls(self, line: TronLine) -> list[TronCall]:
        """The transactions the resource account sends for `line`."""
        funder, address = hex41(self.funder_address or line.address.address), hex41(line.address.address)
        calls = [TronCall("TransferContract", funder, address, amount=line.fund)] if line.fund else []
        for sun, resource in ((line.delegate_energy, "ENERGY"), (line.delegate_bandwidth, "BANDWIDTH")):
            if sun:
                calls.append(TronCall("DelegateResourceContract", funder, address, sun, resource=resource))
                calls.append(TronCall("UnDelegateResourceContract", funder, address, sun, resource=resource))
        return calls

    def print_plan(self, plan: TronPlan) -> None:
        decimals = plan.lines[0].address.decimals if plan.lines else 6
        self.out(f"network {plan.network} (chain {plan.chain_id}), token {plan.token}, treasury {plan.treasury}")
        self.out(
            f"solidified block {plan.solid_block}; energy {plan.energy_price} sun, bandwidth "
            f"{plan.fees['getTransactionFee']} sun/byte; treasury holds USDT: {'yes' if plan.treasury_holds else 'no'}"
            + ("" if plan.treasury_holds else " (the first transfer pays the new-holder energy, and goes first alone)")
        )
        if plan.funder is not None:
            self.out(
                f"resource account {plan.funder}: {_trx(plan.funder_trx or 0)} TRX; can delegate "
                f"{_trx(plan.can_delegate_energy)} TRX of staked energy, "
                f"{_trx(plan.can_delegate_bandwidth)} of bandwidth"
            )
        modes = [line.mode for line in plan.to_sweep]
        self.out(
            f"mode {plan.mode}: delegate for {modes.count('delegate')}, burn for {modes.count('burn')} "
            "(delegating burns no TRX for energy; burning costs energy x price per transfer)"
        )
        for line in plan.lines:
            a = line.address
            head = f"  [{a.index}] {a.address}"
            if line.journal is not None:
                self.out(f"{head}: resuming from step '{line.journal['step']}' of an earlier run ({line.mode})")
                continue
            if line.refused:
                self.out(f"{head}: REFUSED: {line.refused}")
                continue
            extra = line.final_balance - a.unswept_units
            parts = [
                f"sweep {_units(a.unswept_units, decimals)} USDT "
                f"({a.unswept_units} units; on chain {line.final_balance}"
                + (f", {extra} not counted by the gateway stay" if extra else "")
                + ")",
                f"energy {line.energy} ({line.energy_source}), fee limit {_trx(line.fee_limit)} TRX",
                f"bandwidth {line.bandwidth} bytes ({_bandwidth_source(line)})",
            ]
            if line.mode == "delegate":
                parts.append(
                    f"delegate: {_trx(line.delegate_energy)} TRX of staked energy"
                    + (f" and {_trx(line.delegate_bandwidth)} of bandwidth" if line.delegate_bandwidth else "")
                    + ", taken back after the transfer"
                    + ("" if line.activated else f"; activated with {line.fund} sun")
                )
            else:
                parts.append(f"burn: send {_trx(line.fund)} TRX (holds {_trx(line.trx)}), it burns {_trx(line.burn)}")
            parts.append(f"leftover {_trx(line.leftover)} TRX; resource account burns {_trx(line.funder_burn)} TRX")
            self.out(f"{head} [{line.mode}, batch {line.batch}]: " + "; ".join(parts))
        burned_by_addresses = sum(line.burn for line in plan.to_sweep)
        self.out(
            f"total: {len(plan.to_sweep)} transfers, {_units(plan.units, decimals)} USDT ({plan.units} units); "
            f"TRX sent to addresses {_trx(plan.sent)}, burned by them {_trx(burned_by_addresses)}, burned by the "
            f"resource account {_trx(plan.funder_burn)}; left on addresses "
            f"{_trx(sum(line.leftover for line in plan.to_sweep))}; energy delegated and taken back "
            f"{sum(line.energy for line in plan.to_sweep if line.mode == 'delegate')}"
        )
        if plan.funder is not None and plan.funder_trx is not None:
            enough = "enough" if plan.funder_trx >= plan.funder_needs else "NOT ENOUGH"
            self.out(
                f"the resource account needs {_trx(plan.funder_needs)} TRX of its {_trx(plan.funder_trx)}: {enough}"
            )

    # --- execution -----------------------------------------------------------------------------

    def execute(self, plan: TronPlan) -> int:
        """Carry the plan (and any unfinished earlier run) to the end; the number of addresses
        recorded as swept."""
        if (plan.to_sweep or any(line.journal for line in plan.lines)) and self.funder is None:
            raise SweepError("--execute needs the funding key (USDT_SWEEP_FUNDING_KEY or --funding-key-file)")
        if plan.funder_trx is not None and plan.funder_needs > plan.funder_trx:
            raise SweepError(f"the resource account holds {plan.funder_trx} sun; the plan needs {plan.funder_needs}")
        for line in plan.to_sweep:
            self.journal.entries.pop(line.key, None)  # an earlier run's ended entry: planned anew
            self.journal.update(
                line.key,
                family="tron",
                step="planned",
                listed=dict(line.address.raw),
                treasury=self.treasury,
                units=line.address.unswept_units,
                mode=line.mode,
                batch=line.batch,
                energy=line.energy,
                price=plan.energy_price,
                feeLimit=line.fee_limit,
                fund=line.fund,
                bandwidthBurn=line.bandwidth_burn,
                delegateEnergy=line.delegate_energy,
                delegateBandwidth=line.delegate_bandwidth,
                measured=line.batch == 1,
                txs={},
            )
        active = [line for line in plan.lines if line.refused is None]
        for batch in sorted({int(self._entry(line)["batch"]) for line in active}):
            self._run_batch([line for line in active if int(self._entry(line)["batch"]) == batch])
        recorded = 0
        for line in active:
            recorded += self._record(line)
        return recorded

    def _run_batch(self, lines: list[TronLine]) -> None:
        try:
            self._fund(lines)
            self._delegate(lines)
            self._transfer(lines)
        except Exception as exc:
            self._return_delegations(lines, exc)
            raise
        self._undelegate(lines)

    def _entry(self, line: TronLine) -> dict[str, Any]:
        return self.journal.entries[line.key]

    def _step(self, line: TronLine) -> int:
        step = self._entry(line)["step"]
        return len(STEPS) if step in ENDED else STEPS.index(step)

    def _journal(self, line: TronLine, step: str | None = None, **fields: Any) -> None:
        if step is not None:
            fields["step"] = step
        self.journal.update(line.key, **fields)
        if step is not None:
            self.on_step(line.key, step)

    def _tx(self, line: TronLine, name: str) -> dict[str, Any] | None:
        found = self._entry(line)["txs"].get(name)
        return dict(found) if found is not None else None

    def _set_tx(self, line: TronLine, name: str, tx: dict[str, Any] | None) -> None:
        txs = dict(self._entry(line)["txs"])
        if tx is None:
            txs.pop(name, None)
        else:
            txs[name] = tx
        self.journal.update(line.key, txs=txs)

    # the steps

    def _fund(self, lines: list[TronLine]) -> None:
        todo = []
        for line in lines:
            if self._step(line) >= STEPS.index("funded"):
                continue
            self._measure_again(line)
            entry = self._entry(line)
            if entry["step"] in ENDED:
                continue
            if int(entry["fund"]):
                todo.append((line, "fund"))
        self._run(todo, "fund")
        for line in lines:
            if self._step(line) < STEPS.index("funded"):
                self._journal(line, "funded")

    def _measure_again(self, line: TronLine) -> None:
        """Before anything is signed for an address (in the second batch: after the first transfer
        reached the treasury), its transfer is measured again and its funding or delegation set
        from that figure."""
        entry = self._entry(line)
        if entry["txs"] or entry.get("measured"):
            return
        fresh = TronLine(
            line.address, line.final_balance, 0, True, FREE_BANDWIDTH, mode=str(entry["mode"]), batch=line.batch
        )
        self._fees["getEnergyFee"] = int(entry["price"])
        self._measure(fresh)
        account = self.node.account(line.address.address)
        trx, activated = int(account.get("balance", 0)), bool(account)
        fields: dict[str, Any] = {"energy": fresh.energy, "feeLimit": fresh.fee_limit, "measured": True}
        if fresh.fee_limit > self.max_fee_sun:
            self.out(f"  [{line.address.index}] {line.address.address}: its transfer now needs more than --max-fee-trx")
            self._journal(line, "abandoned", **fields, reason="fee limit above --max-fee-trx when measured again")
            return
        if entry["mode"] == "delegate":
            resources = self.node.resources(self.funder_address or "")
            need = stake_for(
                fresh.energy * (100 + self.margin) // 100,
                resources["TotalEnergyLimit"] or 1,
                resources["TotalEnergyWeight"] or 1,
            )
            if need > self.node.can_delegate(self.funder_address or "", "ENERGY"):
                entry["mode"] = "burn"
                self.out(f"  [{line.address.index}] {line.address.address}: not enough delegatable energy now; burn")
            else:
                fund = max(0, int(entry["bandwidthBurn"]) - trx) or (0 if activated else ACTIVATION_SUN)
                fields |= {"delegateEnergy": need, "fund": fund}
        if entry["mode"] == "burn":
            bandwidth_burn = int(entry["bandwidthBurn"])
            if int(entry["delegateBandwidth"]):  # its bandwidth was to be lent: now it burns it
                bandwidth_burn = fresh.bandwidth * self._fees["getTransactionFee"]
            fund = max(0, fresh.fee_limit + bandwidth_burn - trx) or (0 if activated else ACTIVATION_SUN)
            fields |= {"mode": "burn", "fund": fund, "bandwidthBurn": bandwidth_burn}
            fields |= {"delegateEnergy": 0, "delegateBandwidth": 0}
        if fresh.energy != int(entry["energy"]):
            self.out(
                f"  [{line.address.index}] {line.address.address}: energy measured again: {fresh.energy} "
                f"(planned {entry['energy']})"
            )
        self.journal.update(line.key, **fields)

    def _delegate(self, lines: list[TronLine]) -> None:
        todo = []
        for line in lines:
            entry = self._entry(line)
            if self._step(line) >= STEPS.index("delegated") or entry["mode"] != "delegate":
                continue
            todo.append((line, "delegateEnergy"))
            if int(entry["delegateBandwidth"]):
                todo.append((line, "delegateBandwidth"))
        self._run(todo, "delegate")
        for line in lines:
            if self._step(line) < STEPS.index("delegated"):
                self._journal(line, "delegated")

    def _transfer(self, lines: list[TronLine]) -> None:
        todo = [(line, "transfer") for line in lines if self._step(line) < STEPS.index("transferred")]
        self._run(todo, "transfer")
        for line, _ in todo:
            tx = self._tx(line, "transfer")
            assert tx is not None and tx["state"] == "final"
            outcome = dict(tx["outcome"])
            outcome["moved"] = moved_units(
                tx["outcome"], line.address.token_contract, line.address.address, self.treasury
            )
            self._journal(line, "transferred", outcome=outcome)

    def _undelegate(self, lines: list[TronLine]) -> None:
        todo = []
        for line in lines:
            if self._step(line) >= STEPS.index("undelegated"):
                continue
            for name, delegation in UNDELEGATIONS.items():
                if self._tx(line, delegation) is not None:
                    todo.append((line, name))
        self._run(todo, "undelegate")
        for line in lines:
            if self._step(line) < STEPS.index("undelegated"):
                self._journal(line, "undelegated")

    def _return_delegations(self, lines: list[TronLine], cause: Exception) -> None:
        """After an error, take back the delegations of addresses whose transfer was never signed
        (a signed transfer may still be mined, and needs its energy: the next run carries it on).
        A delegation still in flight is followed first: one that can no longer be mined needs
        nothing taken back."""
        for line in lines:
            entry = self._entry(line)
            if entry["step"] in ENDED or self._tx(line, "transfer") is not None:
                continue
            delegated = [(line, name) for name in DELEGATIONS if self._tx(line, name) is not None]
            if not delegated:
                continue
            try:
                self._await(delegated)
                undo = [(line, UNDO[name]) for _, name in delegated if self._tx(line, name) is not None]
                self._run(undo, "undelegate")
            except Exception as exc:  # the node may be what failed: the next run takes them back
                self.out(
                    f"  [{line.address.index}] {line.address.address}: its delegation could not be taken back "
                    f"({exc}); run the same command again to take it back"
                )
                continue
            self._journal(line, "abandoned", reason=str(cause))
            self.out(f"  [{line.address.index}] {line.address.address}: stopped ({cause}); delegation taken back")

    def _record(self, line: TronLine) -> int:
        entry = self._entry(line)
        if entry["step"] != "undelegated":
            return 0
        outcome = entry["outcome"]
        head = f"  [{line.address.index}] {line.address.address}"
        txid = entry["txs"]["transfer"]["txid"]
        if outcome["result"] != "SUCCESS" or int(outcome["moved"]) <= 0:
            self._journal(line, "failed")
            self.out(
                f"{head}: FAILED: its transfer {txid} ended {outcome['result']} (energy {outcome['energyUsed']}, "
                f"burned {_trx(int(outcome['fee']))} TRX); the money stays on the address; run again to retry"
            )
            return 0
        sweep = self.client.record_xpub_sweep(self.network, line.address.address, txid, int(outcome["moved"]))
        self._journal(line, "recorded", recordedAt=sweep.recorded_at.isoformat())
        self.out(
            f"{head}: swept {sweep.units} units in {txid} (energy {outcome['energyUsed']}, burned "
            f"{_trx(int(outcome['fee']))} TRX), recorded"
        )
        return 1

    # --- transactions --------------------------------------------------------------------------

    def _call(self, line: TronLine, name: str) -> tuple[TronCall, int, Any]:
        """What transaction `name` of the address is, its fee limit, and whose key signs it."""
        entry = self._entry(line)
        address, funder = hex41(line.address.address), hex41(self.funder_address or "")
        if name == "fund":
            return TronCall("TransferContract", funder, address, amount=int(entry["fund"])), 0, self.funder
        if name == "transfer":
            data = transfer_data(str(entry["treasury"]), int(entry["units"]))
            call = TronCall("TriggerSmartContract", address, hex41(line.address.token_contract), data=data)
            return call, int(entry["feeLimit"]), self.signer(line.address.index)
        if name in DELEGATIONS:
            sun = int(entry["delegateEnergy" if name == "delegateEnergy" else "delegateBandwidth"])
            return (
                TronCall("DelegateResourceContract", funder, address, sun, resource=DELEGATIONS[name]),
                0,
                self.funder,
            )
        delegation = UNDELEGATIONS[name]
        sun = int(entry["delegateEnergy" if delegation == "delegateEnergy" else "delegateBandwidth"])
        call = TronCall("UnDelegateResourceContract", funder, address, sun, resource=DELEGATIONS[delegation])
        return call, 0, self.funder

    def _run(self, items: list[tuple[TronLine, str]], label: str) -> None:
        """Sign (unless journaled), send and follow to its solidified block each transaction of
        `items`; one that can never be mined any more is built again."""
        while items:
            for line, name in items:
                tx = self._tx(line, name)
                if tx is None:
                    call, fee_limit, account = self._call(line, name)
                    try:
                        body = self.node.build(call, fee_limit)
                    except NodeLied as exc:
                        raise SweepError(f"{line.address.address}: {name}: {exc}; nothing signed") from None
                    body["signature"] = [sign_transaction(account, body)]
                    tx = {
                        "txid": body["txID"],
                        "body": body,
                        "expiration": int(body["raw_data"]["expiration"]),
                        "state": "signed",
                    }
                    # Journaled before it is broadcast: an interrupted run sends these very bytes.
                    self._set_tx(line, name, tx)
                    self.on_step(line.key, f"{label}-signed")
                if tx["state"] == "signed":
                    if not self.node.info(tx["txid"], solidified=False):
                        self.node.broadcast(tx["body"])
                    self._set_tx(line, name, tx | {"state": "sent"})
                    self.on_step(line.key, f"{label}-sent")
            items = self._await(items)

    def _await(self, items: list[tuple[TronLine, str]]) -> list[tuple[TronLine, str]]:
        """Wait until each transaction's block is solidified; those no block can hold any more (the
        solidified block is past their expiration and no block has them) are dropped from the
        journal and returned, to be built again."""
        dead: list[tuple[TronLine, str]] = []
        pending = [(line, name) for line, name in items if (self._tx(line, name) or {}).get("state") != "final"]
        while pending:
            _, solid_time = self.node.solid_block()
            waiting = []
            for line, name in pending:
                tx = self._tx(line, name)
                assert tx is not None
                info = self.node.info(tx["txid"], solidified=True)
                if info:
                    outcome = _outcome(info)
                    if name != "transfer" and outcome["result"] != "SUCCESS":
                        raise SweepError(f"{line.address.address}: {name} {tx['txid']} failed: {outcome['result']}")
                    self._set_tx(line, name, tx | {"state": "final", "block": outcome["block"], "outcome": outcome})
                elif self.node.info(tx["txid"], solidified=False):
                    waiting.append((line, name))
                elif solid_time >= int(tx["expiration"]):
                    self._set_tx(line, name, None)
                    dead.append((line, name))
                else:
                    self.node.broadcast(tx["body"])  # dropped, or never sent: the same bytes again
                    waiting.append((line, name))
            pending = waiting
            if pending:
                self.wait()
        return dead


def _bandwidth_source(line: TronLine) -> str:
    if line.delegate_bandwidth:
        return f"lent: {_trx(line.delegate_bandwidth)} TRX of staked bandwidth"
    return "burned" if line.bandwidth_burn else "free"


def _size(call: TronCall, fee_limit: int = 0) -> int:
    """The bandwidth bytes of `call` once built and signed (the reference block and times have
    fixed sizes for a few thousand years)."""
    now = int(time.time() * 1000)
    raw = raw_data_bytes(
        call,
        ref_block_bytes=b"\1\1",
        ref_block_hash=b"\1" * 8,
        expiration=now + 60_000,
        timestamp=now,
        fee_limit=fee_limit,
    )
    return tx_bandwidth(raw)


def _outcome(info: Mapping[str, Any]) -> dict[str, Any]:
    """What a mined transaction did and cost (protobuf-JSON leaves zero fields out)."""
    receipt = info.get("receipt") or {}
    result = str(receipt.get("result") or ("FAILED" if info.get("result") == "FAILED" else "SUCCESS"))
    if info.get("result") == "FAILED" and result == "SUCCESS":
        result = "FAILED"
    return {
        "block": int(info["blockNumber"]),
        "result": result,
        "energyUsed": int(receipt.get("energy_usage_total", 0)),
        "energyDelegated": int(receipt.get("energy_usage", 0)),
        "energyFee": int(receipt.get("energy_fee", 0)),
        "netFee": int(receipt.get("net_fee", 0)),
        "fee": int(info.get("fee", 0)),
        "log": list(info.get("log") or []),
    }


def run(
    args: Any,
    client: Client,
    mnemonic: str,
    funder: Any | None,
    *,
    out: Callable[[str], None] = print,
    on_step: Callable[[str, str], None] | None = None,
) -> int:
    """The command on a Tron network (sweep.main, with a T... treasury): plan, print, and with
    --execute carry it out. The exit code: 0, or 3 when an address was refused or its transfer
    failed."""
    sweeper = TronSweeper(
        client,
        TronNodeClient(args.rpc_url, api_key=os.environ.get("TRON_PRO_API_KEY")),
        Journal(Path(args.journal)),
        network=args.network,
        treasury=args.treasury,
        signer=tron_signer(mnemonic, args.account),
        funder=funder,
        mode=args.mode,
        energy_price=args.energy_price,
        max_fee_sun=int(args.max_fee_trx * TRX),
        delegation_margin_percent=args.delegation_margin,
        out=out,
        on_step=on_step or (lambda key, step: None),
    )
    try:
        plan = sweeper.plan()
        sweeper.print_plan(plan)
        if not args.execute:
            out("dry run: nothing sent; run again with --execute to sweep")
            return 3 if any(line.refused for line in plan.lines) else 0
        recorded = sweeper.execute(plan)
    except (TronNodeError, NodeLied) as exc:
        raise SweepError(str(exc)) from None
    out(f"done: {recorded} sweeps recorded")
    failed = any(
        e.get("step") == "failed" for k, e in sweeper.journal.entries.items() if k.startswith(f"{args.network}:")
    )
    return 3 if failed or any(line.refused for line in plan.lines) else 0
