"""What a settlement invocation does: on the schedule, one settlement run (settlement/batches.py)
per EVM or Tron network that has an RPC endpoint, one after another (a run is a few RPC calls: it never
waits for a block), then the reuse pool's step (settlement/pooling.py), and the figures the
alarms watch. Each run uses one of the network's endpoints, the first in RPC_ENDPOINTS that
answers with the network's chain id, and no other until it ends (settlement/endpoint.py says why).
A Tron network's run uses the first of its full nodes that answers, and carries its sweep with
the TronSweepRelayer (settlement/tron_relayer.py); tronpy (the chain layer) is imported only when
a Tron network has an endpoint, so an EVM-only deployment's cold start does not load it.

Configuration (environment, validated at cold start):
    RELAYER_KEY_ID                 the KMS key (ECC_SECG_P256K1, SIGN_VERIFY) that pays the gas
    SETTLEMENT_MIN_AMOUNT          a merchant's unsettled USDT is swept once it reaches this ...
    SETTLEMENT_MAX_AGE_SECONDS     ... or once its oldest credit waited this long
    SETTLEMENT_MAX_GAS_PRICE_GWEI  the most the relayer pays per gas; above it, sweeps wait
    SETTLEMENT_MAX_DEPOSITS        deposits per sweep (at most 99)
    SETTLEMENT_REFUND_WINDOW_SECONDS
                                   an address with spare money (an order's excess, unmatched
                                   money) credited less than this ago is not swept: it can be
                                   refunded from the address meanwhile (0: no wait)
    SETTLEMENT_SWEEPS_PER_DAY, SETTLEMENT_GAS_PER_SWEEP
                                   a day's sweeps, for RelayerBalanceCoverage: the percent of them
                                   the relayer's native balance pays at the current gas price (on
                                   Tron: the energy per sweep, at the chain's energy price)
    TRON_FEE_LIMIT_SUN, TRON_ENERGY_MODE
                                   each Tron sweep's fee_limit, and whether the relayer's energy
                                   is burned or staked (tron_energy.py)
Metrics (per network and across networks): RelayerBalanceCoverage (the balance alarm: below 100;
reported while the network has money to sweep),
SettlementInFlightSeconds (a sweep not final this long: the stuck alarm), SettlementsCompleted,
SettlementsFailed (the failed alarm), SettlementBalanceShort (deposit addresses held because their
token balance at a final block does not cover their credits: the balance-short alarm).

Before a sweep is built, each of its addresses' balances is read at a final block from another of
the network's endpoints than the run's (the same one when only one is configured):
settlement/balance_check.py.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from usdt_gateway import clock, tron_energy, tron_energy_status
from usdt_gateway.chain import tron_tx
from usdt_gateway.chain.jsonrpc import Rpc, RpcError, RpcUnavailable
from usdt_gateway.chain.rpc_config import load_endpoints
from usdt_gateway.chain.tron import Provider
from usdt_gateway.config import ConfigError, networks
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.money import to_base_units
from usdt_gateway.networks import Network
from usdt_gateway.observability import logger, metrics
from usdt_gateway.settlement import balance_check, batches, endpoint, pooling
from usdt_gateway.settlement.records import SettlementStatus
from usdt_gateway.settlement.relayer import FeePolicy, Outcome, SweepRelayer, read_settlement
from usdt_gateway.settlement.tron_relayer import TronSweepRelayer
from usdt_gateway.tron_energy import EnergySetting

GWEI = 10**9


@dataclass(frozen=True)
class SettlementConfig:
    relayer_key_id: str
    min_amount: Decimal
    max_age_seconds: int
    max_gas_price_gwei: Decimal
    max_deposits: int
    sweeps_per_day: int
    gas_per_sweep: int
    refund_window_seconds: int = 0

    def policy(self, network: Network) -> batches.BatchPolicy:
        return batches.BatchPolicy(
            min_units=to_base_units(self.min_amount, network.decimals),
            max_age_ms=self.max_age_seconds * 1000,
            max_deposits=self.max_deposits,
            refund_window_ms=self.refund_window_seconds * 1000,
        )

    def fees(self) -> FeePolicy:
        return FeePolicy(max_fee_per_gas=int(self.max_gas_price_gwei * GWEI))


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def load_config() -> SettlementConfig:
    try:
        config = SettlementConfig(
            relayer_key_id=os.environ["RELAYER_KEY_ID"],
            min_amount=Decimal(_env("SETTLEMENT_MIN_AMOUNT", "100")),
            max_age_seconds=int(_env("SETTLEMENT_MAX_AGE_SECONDS", "86400")),
            max_gas_price_gwei=Decimal(_env("SETTLEMENT_MAX_GAS_PRICE_GWEI", "100")),
            max_deposits=int(_env("SETTLEMENT_MAX_DEPOSITS", "50")),
            sweeps_per_day=int(_env("SETTLEMENT_SWEEPS_PER_DAY", "24")),
            gas_per_sweep=int(_env("SETTLEMENT_GAS_PER_SWEEP", "600000")),
            refund_window_seconds=int(_env("SETTLEMENT_REFUND_WINDOW_SECONDS", "86400")),
        )
    except KeyError as exc:
        raise ConfigError("RELAYER_KEY_ID is not set: the settlement needs the relayer's KMS key") from exc
    except (ValueError, InvalidOperation) as exc:
        raise ConfigError(f"a SETTLEMENT_* setting is not a number: {exc}") from exc
    if config.min_amount < 0 or config.max_age_seconds <= 0 or config.max_gas_price_gwei <= 0:
        raise ConfigError("SETTLEMENT_MIN_AMOUNT must be >= 0, the maximum age and gas price above 0")
    if config.refund_window_seconds < 0:
        raise ConfigError("SETTLEMENT_REFUND_WINDOW_SECONDS must be >= 0")
    if not 0 < config.max_deposits <= batches.MAX_DEPOSITS:
        raise ConfigError(f"SETTLEMENT_MAX_DEPOSITS must be between 1 and {batches.MAX_DEPOSITS}")
    return config


@dataclass
class Job:
    """One network's settlement: its RPC endpoints (in order of preference) and the relayer's
    signer, kept across invocations."""

    network: Network
    endpoints: Sequence[Rpc]
    signer: KmsSigner


@dataclass
class TronJob:
    """One Tron network's settlement: its full nodes (in order of preference), the signer, and how
    the relayer pays for energy (its fee limit and mode)."""

    network: Network
    endpoints: Sequence[Provider]
    signer: KmsSigner
    energy: EnergySetting


def build(config: SettlementConfig) -> dict[str, Job | TronJob]:
    """A job per enabled EVM or Tron network with an RPC endpoint."""
    specs = load_endpoints({})
    signer = KmsSigner(config.relayer_key_id)
    enabled = networks()
    energy = tron_energy.load(enabled)  # checked at cold start already (config.networks)
    jobs: dict[str, Job | TronJob] = {}
    for name, network in enabled.items():
        if not specs.get(name):
            continue
        if network.family == "evm":
            jobs[name] = Job(network, endpoint.clients(specs[name]), signer)
        elif importlib.util.find_spec("tronpy") is None:
            # A package without the chain layer: its deposits would wait on their addresses for ever.
            logger.error("Tron network not settled: tronpy (the chain layer) is not installed", extra={"network": name})
        else:
            from usdt_gateway.chain.readers import TronNode  # tronpy: only where Tron is settled

            nodes = [TronNode(spec.url, api_key=spec.api_key, label=spec.name) for spec in specs[name]]
            jobs[name] = TronJob(network, nodes, signer, energy[name])
    return jobs


def choose_tron(job: TronJob) -> Provider:
    """The first full node, in order, that answers; NoEndpoint when none does."""
    problems: list[str] = []
    for node in job.endpoints:
        try:
            node.make_request("wallet/getnodeinfo", {})
        except RpcUnavailable as exc:
            problems.append(str(exc))
            logger.warning(
                "settlement endpoint passed over: it does not answer",
                extra={"network": job.network.name, "reason": str(exc)},
            )
            continue
        return node
    raise endpoint.NoEndpoint(f"no full node of {job.network.name} answers: " + ("; ".join(problems) or "none"))


def run_tron_network(
    job: TronJob, config: SettlementConfig, relayer: Callable[[Provider], TronSweepRelayer] | None = None
) -> dict[str, Any]:
    """One settlement run of a Tron network, its outcome counted (as run_network)."""
    node = choose_tron(job)
    sweeper = (
        relayer(node)
        if relayer
        else TronSweepRelayer(job.network, node, job.signer, fee_limit=job.energy.fee_limit_sun)
    )
    balances = balance_check.TronSource(job.network, job.endpoints, node)
    report = batches.run(job.network, sweeper, config.policy(job.network), balances)
    token = job.network.token_contract
    pool = pooling.run(job.network, lambda address: tron_tx.token_balance(node, token, address))
    _count_outcomes(job.network, report)
    if report.unsettled or report.in_flight_since is not None:
        report_tron_balance(job, node, config)  # nothing to sweep needs no TRX (and no alarm)
    return {
        "network": job.network.name,
        "endpoint": getattr(node, "label", ""),
        **report.__dict__,
        "pool": pool.__dict__,
    }


def _count_outcomes(network: Network, report: batches.RunReport) -> None:
    for settlement_id in report.marked:
        settlement = read_settlement(settlement_id)
        failed = settlement is not None and settlement.status is SettlementStatus.FAILED
        _gauge("SettlementsFailed" if failed else "SettlementsCompleted", network.name, MetricUnit.Count, 1)
    age = 0 if report.in_flight_since is None else max(0, (clock.now_ms() - report.in_flight_since) // 1000)
    _gauge("SettlementInFlightSeconds", network.name, MetricUnit.Seconds, age)
    if report.outcome != Outcome.BUSY.value:  # a run that read the candidates: held addresses, 0 included
        _gauge("SettlementBalanceShort", network.name, MetricUnit.Count, report.balance_short)


def _gauge(name: str, network: str, unit: MetricUnit, value: float) -> None:
    """One figure per network and across networks (the alarms watch the service's series)."""
    one = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
    one.add_dimension(name="network", value=network)
    if metrics.service:
        one.add_dimensions(service=str(metrics.service))
    one.add_metric(name=name, unit=unit, value=value)
    one.flush_metrics()


def report_balance(job: Job, rpc: Rpc, config: SettlementConfig) -> int | None:
    """RelayerBalanceCoverage: the percent of a day's sweeps the relayer's balance pays now."""
    try:
        balance = int(rpc.call("eth_getBalance", [job.signer.address, "latest"]), 16)
        gas_price = int(rpc.call("eth_gasPrice", []), 16)
    except (RpcError, RpcUnavailable) as exc:
        logger.warning("could not read the relayer's balance", extra={"network": job.network.name, "reason": str(exc)})
        return None
    day = config.sweeps_per_day * config.gas_per_sweep * max(gas_price, 1)
    coverage = balance * 100 // day
    _gauge("RelayerBalanceCoverage", job.network.name, MetricUnit.Percent, min(coverage, 10_000))
    return coverage


def report_tron_balance(job: TronJob, node: Provider, config: SettlementConfig) -> int | None:
    """RelayerBalanceCoverage of a Tron relayer: the percent of a day's sweeps its TRX pays, each
    sweep SETTLEMENT_GAS_PER_SWEEP energy at the chain's energy price (never more than the fee
    limit lets it burn). In `staked` mode the energy its stake gives each day counts too, at the
    same price."""
    try:
        balance = tron_tx.trx_balance(node, job.signer.tron_address)
        price = max(tron_tx.energy_price(node), 1)
        staked = 0
        if job.energy.mode == "staked":
            staked = tron_energy_status.resources(node, job.signer.tron_address)["energyLimit"]
    except (RpcUnavailable, tron_tx.TronTxError, ValueError) as exc:
        logger.warning("could not read the relayer's balance", extra={"network": job.network.name, "reason": str(exc)})
        return None
    per_sweep = min(config.gas_per_sweep * price, job.energy.fee_limit_sun)
    day = max(config.sweeps_per_day * per_sweep, 1)
    coverage = (balance + staked * price) * 100 // day
    _gauge("RelayerBalanceCoverage", job.network.name, MetricUnit.Percent, min(coverage, 10_000))
    return coverage


def run_network(
    job: Job, config: SettlementConfig, relayer: Callable[[Rpc], SweepRelayer] | None = None
) -> dict[str, Any]:
    """One settlement run of a network, its outcome counted. `relayer` makes the run's relayer
    on the endpoint chosen for it (tests give one with a hook)."""
    rpc = endpoint.choose(job.network, job.endpoints)  # this run's only endpoint
    sweeper = relayer(rpc) if relayer else SweepRelayer(job.network, rpc, job.signer, fees=config.fees())
    balances = balance_check.EvmSource(job.network, job.endpoints, rpc)  # another endpoint, if there is one
    report = batches.run(job.network, sweeper, config.policy(job.network), balances)
    # swept addresses on their way back into service
    pool = pooling.run(job.network, pooling.evm_balance_of(job.network, rpc))
    _count_outcomes(job.network, report)
    if report.unsettled or report.in_flight_since is not None:
        report_balance(job, rpc, config)  # a network with nothing to sweep needs no gas (and no alarm)
    return {"network": job.network.name, "endpoint": rpc.label, **report.__dict__, "pool": pool.__dict__}


def handle(jobs: Mapping[str, Job | TronJob], config: SettlementConfig, event: dict[str, Any]) -> dict[str, Any]:
    """Every network's run (or the one the event names); a network that fails does not keep the
    others from settling: it is logged and raised once every network has had its turn."""
    names = [str(event["network"])] if "network" in event else list(jobs)
    results, failed = [], []
    for name in names:
        job = jobs.get(name)
        if job is None:
            raise ValueError(f"network {name!r} is not settled here; settled: {', '.join(jobs) or 'none'}")
        try:
            if isinstance(job, TronJob):
                results.append(run_tron_network(job, config))
            else:
                results.append(run_network(job, config))
        except Exception:
            logger.exception("settlement run failed", extra={"network": name})
            failed.append(name)
    if failed:
        raise RuntimeError(f"settlement failed on {', '.join(failed)}")
    return {"networks": results}
