"""Cost per swept order: the offline xpub sweep tool against contract mode, measured on anvil in
one run, and the same comparison modelled for Tron.

    .venv/bin/python -m bench.sweep_cost [--json] [--xpub-sizes 1,10,100] [--contract-sizes 1,10,50,99]

EVM, measured:

- **xpub**: the SDK's sweep tool (usdt_gateway_client.sweep.Sweeper, the code `python -m
  usdt_gateway_client.sweep` runs) on the local stack in xpub mode (`make dev` in-process: the
  API, moto, anvil, the scanner). Per size n: n orders of 1 USDT created through the API, paid on
  anvil, credited by the scanner and listed by GET /v1/xpub/addresses; then the tool plans and
  executes with keys from the stack's development mnemonic and a funding key: one funding
  transaction per address, then the address's own token transfer, each final and recorded
  through the API. Gas is read from the receipts of the transactions the tool journaled; what
  stays on an address is (the transfer's gas limit - its gas used) x the price, native coin the
  tool sent that nobody can move without paying more gas than it is worth.
- **contract mode**: `python -m bench.settlement_reuse_gas --json` in a subprocess (its own
  moto and anvil: the gateway's own path, create -> scan -> settle -> pool), fresh addresses and
  addresses reused from the pool, at the sizes given (a sweep covers at most 99 deposits; the
  default SETTLEMENT_MAX_DEPOSITS is 50).

The treasury holds USDT before every measured sweep in both (its balance slot is not new).
Costs in ETH are gas x one stated price (GAS_PRICE_GWEI): gas does not depend on the price.

Tron, modelled (no TVM runs here; see tron_model): energy and TRX per order for the xpub path
(activation, then energy burned or delegated, then the address's transfer) and for contract mode
(the relayer's factory sweep, energy burned or from its own stake), from documented figures and
TVM's per-operation energy costs, with contract mode's energy bounded from above by the EVM gas
measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_typing import HexStr
from web3.types import TxParams, Wei

from devstack.template import REPO_ROOT

XPUB_SIZES = (1, 10, 100)
CONTRACT_SIZES = (1, 10, 50, 99)
UNIT = 1_000_000  # 1 USDT
NETWORK = "local"
CONFIRMATIONS = 2  # the local network's finality
LISTED_WITHIN_S = 180  # a guard against a hung run: crediting n payments takes a few blocks

# The price the costs in ETH are given at: Ethereum mainnet's 7-day average gas price was 4.3 gwei
# on 2026-02-04 (blocklr.pages.dev, "Ethereum gas fees below 5 gwei", citing the base fee after
# Dencun; YCharts' average around 3 gwei), rounded up. The relayer's ceiling (the template's
# SettlementMaxGasPriceGwei) is 100 gwei. Gas x price is linear: other prices scale the column.
GAS_PRICE_GWEI = 5


# --- Tron: documented figures (sources in docs/benchmarks.md, "Tron: energy and TRX per order") ----

USDT_TRANSFER_ENERGY = 64_285  # to an address that holds USDT (docs.catfee.io; eopen.io; chains.md 2.7)
USDT_TRANSFER_NEW_HOLDER_ENERGY = 130_285  # to an address that never held USDT (same sources)
TRANSFER_BANDWIDTH = 345  # bytes of a USDT transfer (docs.getblock.io "TRON fee model": ~345)
TRX_TRANSFER_BANDWIDTH = 268  # bytes of a TRX transfer (same page: ~268); system transactions alike
ENERGY_PRICE_SUN = 100  # getEnergyFee (tronprotocol docs, eth_gasPrice: 0x64 on Nile; getblock: mainnet)
BANDWIDTH_PRICE_SUN = 1_000  # TRANSACTION_FEE, sun per byte burned (tronprotocol docs, overview)
FREE_BANDWIDTH = 600  # per account and day (tronprotocol docs, resource model: parameter #61)
# Activating an address by sending it TRX: CREATE_NEW_ACCOUNT_FEE_IN_SYSTEM_CONTRACT (1 TRX) plus
# CREATE_ACCOUNT_FEE (0.1 TRX) when the sender has no staked bandwidth (tronprotocol docs, overview).
ACTIVATION_SUN = 1_100_000
# Energy a staked TRX yields a day: stake / all TRX staked for energy x the network's daily energy
# (TIP-17, the resource model). About 9.5 at mainnet's current levels (gaspeek.com's energy
# calculator; a third-party figure that moves with the total staked).
ENERGY_PER_STAKED_TRX_DAY = 9.5
SUN_PER_TRX = 1_000_000

# TVM's own energy per operation (java-tron, actuator/.../vm/EnergyCost.java): no 21,000 base and
# no calldata charge (bandwidth instead), no EIP-2929 access costs, SSTORE by the old rules.
TVM_CALL = 40
TVM_SLOAD = 50
TVM_SET_SSTORE = 20_000
TVM_RESET_SSTORE = 5_000
TVM_CREATE = 32_000
TVM_CREATE_DATA_BYTE = 200
TVM_EXT_CODE_SIZE = 20
TVM_SHA3, TVM_SHA3_WORD = 30, 6
TVM_LOG, TVM_LOG_TOPIC, TVM_LOG_BYTE = 375, 375, 8
CLONE_CODE_BYTES = 45  # an EIP-1167 clone's runtime code
CLONE_INIT_WORDS = 2  # its 55-byte init code, hashed for CREATE2
# USDT's energy factor under the dynamic energy model (TIP-491: each contract's instructions cost
# (1 + factor) times): a new holder's transfer costs 66,000 more than a holder's, 4.4 times the
# 15,000 between a new slot's SSTORE and an existing one's, so USDT runs at factor 3.4.
USDT_CONSUMPTION_FACTOR = Decimal("4.4")
# USDT's balanceOf on TVM before that factor: two SLOADs (its `deprecated` flag, the balance), the
# mapping's keccak, the ABI dispatch over its functions and the return. Bounded, not measured.
USDT_BALANCE_OF_BASE = (250, 1_000)
# The Tron build's re-entrancy lock is a storage slot (target paris: no transient storage), set
# and reset by every sweep: 5,000 + 5,000, or 20,000 + 5,000 the first time the slot is written.
LOCK_PER_SWEEP = (2 * TVM_RESET_SSTORE, TVM_SET_SSTORE + TVM_RESET_SSTORE)


def _redirected() -> contextlib.AbstractContextManager[Any]:
    """The gateway's metrics (EMF lines) and logs off stdout, which carries the result."""
    return contextlib.redirect_stdout(sys.stderr)


# --- EVM: contract mode (the existing bench, in a process of its own) ---------------------------


def contract_rows(sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "bench.settlement_reuse_gas", "--json", "--sizes", ",".join(map(str, sizes))]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return list(json.loads(done.stdout)["rows"])


# --- EVM: the xpub sweep tool on the local stack ------------------------------------------------


class XpubWorld:
    """The local stack in xpub mode, a merchant key without the rate limit in the way, a treasury
    that holds USDT and a funding account."""

    def __init__(self, state_dir: Path) -> None:
        from eth_account import Account
        from usdt_gateway_client import Client

        from devstack.stack import start_stack
        from usdt_gateway import merchants

        self.state_dir = state_dir
        self.stack = start_stack(state_dir=state_dir, local_mode="xpub")
        if self.stack.receiver is not None:
            self.stack.receiver.echo = lambda line: None
        key = merchants.create_api_key(self.stack.merchant["merchantId"], rate_limit=100_000, label="bench-sweep")
        self.client = Client(self.stack.base_url, key["apiKey"], key["secretKey"])
        self.mnemonic = str(json.loads(self.stack.wallet_file.read_text(encoding="utf-8"))["mnemonic"])
        self.w3 = self.stack.chain.anvil.web3()
        self.info = self.stack.chain.info
        self.treasury = str(Account.create().address)
        self.funder = Account.create()
        self._wait(self._send_token(self.treasury, 1))  # its balance slot warm, as in contract mode's bench
        funding: TxParams = {"from": self.info.payer, "to": self.funder.address, "value": Wei(10**20)}
        self._wait(self.w3.eth.send_transaction(funding))

    def stop(self) -> None:
        self.stack.stop()

    def _send_token(self, to: str, units: int) -> Any:
        from usdt_gateway_client.sweep import transfer_data

        data = HexStr(transfer_data(to, units))
        return self.w3.eth.send_transaction({"from": self.info.payer, "to": self.info.token_contract, "data": data})

    def _wait(self, tx_hash: Any) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def paid_orders(self, n: int, tag: str) -> dict[str, int]:
        """n orders of 1 USDT created through the API, paid, and listed final and unswept."""
        orders = [
            self.client.create_order(order_id=f"{tag}-{i}", amount="1.00", network=NETWORK, expires_in=3600)
            for i in range(n)
        ]
        for tx in [self._send_token(o.address, UNIT) for o in orders]:
            self._wait(tx)
        paid = {str(o.address): UNIT for o in orders}
        deadline = time.monotonic() + LISTED_WITHIN_S
        while time.monotonic() < deadline:
            listed = {a.address: a.unswept_units for a in self.client.list_xpub_addresses(NETWORK)}
            if all(listed.get(address) == units for address, units in paid.items()):
                return paid
            time.sleep(1.0)
        raise RuntimeError(f"the gateway did not list the {n} payments as final and unswept in {LISTED_WITHIN_S} s")

    def sweep(self, n: int) -> dict[str, Any]:
        """The tool's plan and execution for n paid addresses; gas from the journaled transactions."""
        from usdt_gateway_client.sweep import Journal, Rpc, Sweeper, evm_signer

        paid = self.paid_orders(n, f"xpub{n}")
        journal = self.state_dir / f"sweep-{n}.json"
        printed: list[str] = []
        tool = Sweeper(
            self.client,
            Rpc(self.info.rpc_url),
            Journal(journal),
            network=NETWORK,
            treasury=self.treasury,
            signer=evm_signer(self.mnemonic, 0),
            funder=self.funder,
            confirmations=CONFIRMATIONS,
            out=printed.append,
        )
        plan = tool.plan()
        planned = {line.address.address for line in plan.to_sweep}
        if planned != set(paid) or any(line.refused for line in plan.lines):
            raise RuntimeError(f"the plan is not the {n} paid addresses: {printed}")
        held = self._balance(self.treasury)
        if tool.execute(plan) != n:
            raise RuntimeError(f"not every address was recorded: {printed}")
        if self._balance(self.treasury) - held != n * UNIT:
            raise RuntimeError("the treasury did not get every payment")
        funding = transfers = stranded = 0
        for entry in json.loads(journal.read_text(encoding="utf-8"))["addresses"].values():
            fund = self.w3.eth.get_transaction_receipt(entry["fundTx"]["hash"])
            sent = self.w3.eth.get_transaction_receipt(entry["transferTx"]["hash"])
            funding += int(fund["gasUsed"])
            transfers += int(sent["gasUsed"])
            stranded += int(entry["gasLimit"]) - int(sent["gasUsed"])
        return {
            "addresses": n,
            "funding_gas_per_address": funding // n,
            "transfer_gas_per_address": transfers // n,
            "gas_per_address": (funding + transfers) // n,
            "stranded_gas_per_address": stranded // n,
            "run_gas_price_wei": plan.gas_price,
        }

    def _balance(self, holder: str) -> int:
        from usdt_gateway_client.sweep import Rpc, token_balance

        return token_balance(Rpc(self.info.rpc_url), self.info.token_contract, holder, "latest")


def xpub_rows(sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as state_dir:
        world = XpubWorld(Path(state_dir))
        try:
            return [world.sweep(n) for n in sizes]
        finally:
            world.stop()


# --- Tron: the model ------------------------------------------------------------------------------


def _sweep_intrinsic_gas(n: int) -> int:
    """EVM gas of a sweep(token, salts) transaction that TVM does not charge as energy: the 21,000
    base and the calldata (4 + 3 x 32 + 32 n bytes; the salts random, so nearly every byte nonzero)."""
    head = 4 * 16 + (12 * 4 + 20 * 16) + 2 * (31 * 4 + 16)  # selector, token word, offset and length words
    return 21_000 + head + n * 32 * 16


def _sweep_bytes(n: int) -> int:
    """Bandwidth of a sweep of n salts: a USDT transfer's 345 bytes with its 68 bytes of call data
    replaced by the sweep's 100 + 32 n."""
    return TRANSFER_BANDWIDTH - 68 + 100 + 32 * n


def _trx(sun: int | Decimal) -> Decimal:
    return (Decimal(sun) / SUN_PER_TRX).quantize(Decimal("0.001"))


def contract_energy(n: int, evm_gas_per_deposit: int, *, fresh: bool) -> tuple[int, int]:
    """(low, high) energy per deposit of one factory sweep of n deposits on TVM.

    USDT's transfer out of the deposit address is the documented 64,285 (the same code and the
    same storage as an xpub address's own transfer: the sender's balance emptied, the treasury's
    existing). USDT's two balanceOf calls are bounded from TVM's per-operation costs, times its
    energy factor. The factory's and the clone's own work: at least their logs, calls, hashes
    (and for a fresh address the CREATE2 and its 45 bytes of code); at most the EVM gas measured
    for the same sweep less the 21,000 and calldata TVM does not charge: no operation these
    contracts run costs more energy on TVM than gas on the EVM since Berlin (SLOAD 50 against 100
    or 2,100, CALL 40 against 100 or 2,600; CREATE2, code and logs alike), and that EVM figure
    also holds the test token's own work. The lock's SSTOREs are added per sweep."""
    balance_of = [int(base * USDT_CONSUMPTION_FACTOR) for base in USDT_BALANCE_OF_BASE]
    swept_log = TVM_LOG + 3 * TVM_LOG_TOPIC + 32 * TVM_LOG_BYTE
    floor = swept_log + 5 * TVM_CALL + 2 * (TVM_SHA3 + 3 * TVM_SHA3_WORD) + TVM_EXT_CODE_SIZE
    if fresh:
        deployed_log = TVM_LOG + 2 * TVM_LOG_TOPIC + 32 * TVM_LOG_BYTE
        floor += TVM_CREATE + CLONE_INIT_WORDS * TVM_SHA3_WORD + CLONE_CODE_BYTES * TVM_CREATE_DATA_BYTE + deployed_log
    ceiling = evm_gas_per_deposit - _sweep_intrinsic_gas(n) // n
    low = USDT_TRANSFER_ENERGY + 2 * balance_of[0] + floor + LOCK_PER_SWEEP[0] // n
    high = USDT_TRANSFER_ENERGY + 2 * balance_of[1] + max(ceiling, floor) + LOCK_PER_SWEEP[1] // n
    return low, high


def tron_model(contract: list[dict[str, Any]]) -> dict[str, Any]:
    """Energy and TRX per order on Tron for each path, from the figures above and, for contract
    mode, the EVM gas of the same run."""
    rows: list[dict[str, Any]] = []
    for r in contract:
        n = int(r["deposits"])
        bandwidth = Decimal(_sweep_bytes(n)) / n
        burned = bandwidth * BANDWIDTH_PRICE_SUN
        for fresh in (True, False):
            low, high = contract_energy(n, int(r["fresh_per_deposit" if fresh else "reused_per_deposit"]), fresh=fresh)
            rows.append(
                {
                    "path": f"contract mode, {'fresh' if fresh else 'reused'} addresses",
                    "per_sweep": n,
                    "energy": [low, high],
                    "bandwidth_bytes": float(round(bandwidth, 1)),
                    # burn: all energy at the energy price, and the bandwidth once the relayer's free
                    # 600 a day are used (a sweep of up to 6 deposits fits in them once a day)
                    "burn_trx": [float(_trx(e * ENERGY_PRICE_SUN + burned)) for e in (low, high)],
                    # staked: the energy comes from the relayer's stake; only bandwidth is burned
                    "staked_trx": float(_trx(burned)),
                    "stake_trx_per_daily_order": [round(e / ENERGY_PER_STAKED_TRX_DAY) for e in (low, high)],
                }
            )
    # xpub: per address, whatever the batch. The address only received USDT, so it is not an
    # account yet: one TRX transfer activates it (1.1 TRX) and, when burning, carries the TRX its
    # transfer burns; its own 345 bytes come from its free 600. Delegating needs an activated
    # address, then DelegateResource and UnDelegateResource from the staked account (bandwidth
    # burned unless that account has free or staked bandwidth left).
    energy_sun = USDT_TRANSFER_ENERGY * ENERGY_PRICE_SUN
    system_tx_sun = TRX_TRANSFER_BANDWIDTH * BANDWIDTH_PRICE_SUN
    rows.append(
        {
            "path": "xpub, TRX sent for the energy (burned)",
            "per_sweep": None,
            "energy": [USDT_TRANSFER_ENERGY, USDT_TRANSFER_ENERGY],
            "bandwidth_bytes": float(TRANSFER_BANDWIDTH),
            "burn_trx": [float(_trx(ACTIVATION_SUN + energy_sun))] * 2,
            "staked_trx": None,
            "stake_trx_per_daily_order": None,
        }
    )
    rows.append(
        {
            "path": "xpub, energy delegated from a staked account",
            "per_sweep": None,
            "energy": [USDT_TRANSFER_ENERGY, USDT_TRANSFER_ENERGY],
            "bandwidth_bytes": float(TRANSFER_BANDWIDTH + 2 * TRX_TRANSFER_BANDWIDTH),
            "burn_trx": None,
            "staked_trx": float(_trx(ACTIVATION_SUN + 2 * system_tx_sun)),
            "stake_trx_per_daily_order": [round(USDT_TRANSFER_ENERGY / ENERGY_PER_STAKED_TRX_DAY)] * 2,
        }
    )
    return {
        "energy_price_sun": ENERGY_PRICE_SUN,
        "bandwidth_price_sun": BANDWIDTH_PRICE_SUN,
        "first_sweep_to_a_new_treasury_extra_energy": USDT_TRANSFER_NEW_HOLDER_ENERGY - USDT_TRANSFER_ENERGY,
        "rows": rows,
    }


# --- the run ----------------------------------------------------------------------------------------


def _eth(gas: float) -> str:
    return f"{Decimal(str(gas)) * GAS_PRICE_GWEI / 10**9:.6f}"


def run(xpub_sizes: tuple[int, ...], contract_sizes: tuple[int, ...]) -> dict[str, Any]:
    started = time.time()
    with _redirected():
        contract = contract_rows(contract_sizes)
        xpub = xpub_rows(xpub_sizes)
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
        "seconds": round(time.time() - started),
        "gas_price_gwei": GAS_PRICE_GWEI,
        "evm": {"contract": contract, "xpub": xpub},
        "tron": tron_model(contract),
    }


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated whole numbers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes are 1 or more: {text!r}")
    return sizes


def print_report(result: dict[str, Any]) -> None:
    price = result["gas_price_gwei"]
    print(f"EVM, gas per order (anvil; ETH at {price} gwei)")
    print("xpub sweep tool   addresses  funding  transfer  gas/order  ETH/order  left on the address (gas)")
    for r in result["evm"]["xpub"]:
        print(
            f"{'':17} {r['addresses']:>9}  {r['funding_gas_per_address']:>7,}  {r['transfer_gas_per_address']:>8,}  "
            f"{r['gas_per_address']:>9,}  {_eth(r['gas_per_address'])}  {r['stranded_gas_per_address']:,}"
        )
    print("contract mode     deposits/sweep  fresh gas  ETH/order  reused gas  ETH/order")
    for r in result["evm"]["contract"]:
        print(
            f"{'':17} {r['deposits']:>14}  {r['fresh_per_deposit']:>9,}  {_eth(r['fresh_per_deposit'])}  "
            f"{r['reused_per_deposit']:>10,}  {_eth(r['reused_per_deposit'])}"
        )
    tron = result["tron"]
    prices = f"energy {tron['energy_price_sun']} sun, bandwidth {tron['bandwidth_price_sun']} sun/byte"
    print(f"\nTron, per order (model; {prices})")
    for r in tron["rows"]:
        per = f" ({r['per_sweep']} per sweep)" if r["per_sweep"] else ""
        print(
            f"  {r['path']}{per}: energy {r['energy'][0]:,}-{r['energy'][1]:,}, bandwidth {r['bandwidth_bytes']} B, "
            f"burn {r['burn_trx']} TRX, staked {r['staked_trx']} TRX + stake {r['stake_trx_per_daily_order']} TRX"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--xpub-sizes", type=_sizes, default=XPUB_SIZES, help="addresses per xpub sweep (1,10,100)")
    parser.add_argument(
        "--contract-sizes", type=_sizes, default=CONTRACT_SIZES, help="deposits per contract-mode sweep (1,10,50,99)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    result = run(args.xpub_sizes, args.contract_sizes)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
