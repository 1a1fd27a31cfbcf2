"""Cold start of the settlement function, measured as bench/cold_start.py measures the API's: a
fresh interpreter per sample imports the handler module and runs its init (Lambda's init phase),
then serves one scheduled invocation against a moto server (DynamoDB, and KMS with the relayer's
ECC_SECG_P256K1 key) and anvil. Two first invocations:

- sweep: the network has one deposit to sweep. The run chooses its endpoint (eth_chainId), takes
  the relayer's lease, claims the deposit, reads fees and estimates gas, signs through KMS
  (GetPublicKey, then Sign) and broadcasts: the longest first run there is;
- idle: nothing to sweep. The run chooses its endpoint, takes the lease, finds nothing, lets go.

Each sample settles a network of its own (same anvil, a new name), so every sample's first
invocation finds the same state.

    .venv/bin/python -m bench.settlement_cold_start [--samples 10] [--build-dir DIR]

Runs with `-B` after the .pyc files exist (as in a Lambda package built with compiled bytecode);
with a `sam build` output in DIR (default .aws-sam/build), its package too. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from web3 import Web3

from bench.cold_start import INIT
from bench.local_aws import point_at_moto
from devstack.evm import Anvil, deploy_token, mint, start_anvil, usdt
from devstack.moto_server import AtomicMotoServer
from devstack.settlement_contracts import deploy_deposit_implementation, deploy_factory

ROOT = Path(__file__).resolve().parents[1]
FUNCTION = "SettlementFunction"

CHILD = (
    INIT
    + r"""
event = json.loads({event!r})
result = mod.lambda_handler(event, Ctx())
t2, c2, returned = time.perf_counter(), time.process_time(), time.time()
(network,) = result["networks"]
print(json.dumps({{"init_ms": (t1 - t0) * 1000, "first_ms": (t2 - t1) * 1000, "init_cpu_ms": (c1 - c0) * 1000,
                  "first_cpu_ms": (c2 - c1) * 1000, "outcome": network["outcome"],
                  "claimed": network["claimed"] is not None, "returned": returned}}))
"""
)


class Chain:
    """anvil with the TestUSDT, the Deposit implementation and one merchant's factory; each
    `network()` is a new gateway network on it, with a funded deposit address to sweep or none."""

    def __init__(self, anvil: Anvil, relayer: str) -> None:
        self.anvil = anvil
        w3 = anvil.web3()
        accounts = list(w3.eth.accounts)
        self.deployer = accounts[0]
        self.token = deploy_token(w3, self.deployer)
        self.implementation = deploy_deposit_implementation(w3, self.deployer).address
        self.factory = deploy_factory(
            w3, self.deployer, treasury=accounts[2], owner=accounts[3], implementation=self.implementation
        ).address
        anvil.rpc("anvil_setBalance", [relayer, hex(10**21)])
        self._names = itertools.count()

    def network(self, *, to_sweep: bool) -> dict[str, str]:
        """The environment of a new network (its own relayer item and candidates)."""
        from usdt_gateway import clock, create2, store
        from usdt_gateway.settlement.candidates import Candidate

        name = f"bench-{next(self._names)}-{secrets.token_hex(2)}"
        if to_sweep:
            salt = create2.order_salt("m_bench", name)
            address = Web3.to_checksum_address(create2.deposit_address(self.factory, self.implementation, salt))
            mint(self.token, address, usdt("5"), owner=self.deployer)
            candidate = Candidate(
                network=name,
                merchant_id="m_bench",
                address=address,
                txid="0x" + secrets.token_hex(32),
                log_index=0,
                units=usdt("5"),
                order_pk=None,  # unmatched money: the run marks no order
                factory=self.factory,
                salt="0x" + salt.hex(),
                token=self.token.address,
                credited_at=clock.now_ms(),
            )
            store.put(candidate.to_item())
        spec = {
            "family": "evm",
            "chainId": 31337,
            "displayName": "Anvil",
            "tokenContract": self.token.address,
            "decimals": 6,
            "finality": {"mode": "confirmations", "confirmations": 1},
            "blockTimeMs": 1000,
        }
        return {
            "ENABLED_NETWORKS": f"tron,eth,bsc,{name}",
            "NETWORKS_CONFIG": json.dumps({name: spec}),
            "RPC_ENDPOINTS": json.dumps({name: [self.anvil.url]}),
        }


def _sample(code: str, env: dict[str, str]) -> dict[str, float]:
    started, start = time.time(), time.perf_counter()
    out = subprocess.run([sys.executable, "-B", "-c", code], env=env, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_ms"] = (time.perf_counter() - start) * 1000
    # From the process's start until the invocation returned (the wall clock, shared with the
    # child): the interpreter's teardown, which Lambda never pays per invocation, left out.
    result["to_return_ms"] = (result["returned"] - started) * 1000
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=ROOT / ".aws-sam/build",
        help="a `sam build` output (default: .aws-sam/build, from `make build`)",
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server's line per request
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    point_at_moto(f"http://{host}:{port}", "bench-settlement")
    key_id = boto3.client("kms").create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    from usdt_gateway.kms_signer import KmsSigner

    base = os.environ | {
        "RELAYER_KEY_ID": key_id,
        "POWERTOOLS_SERVICE_NAME": "settlement",
        "PUBLIC_BASE_URL": "https://pay.example.com",
        "SETTLEMENT_MIN_AMOUNT": "1",
        "POWERTOOLS_METRICS_DISABLED": "1",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }
    event = (ROOT / "events" / "settlement-schedule.json").read_text()

    def child(layer: Path, handler: Path) -> str:
        return CHILD.format(layer=str(layer), handler=str(handler), function=FUNCTION, event=event)

    sources = {"source tree": child(ROOT / "layers/gateway", ROOT / "functions/settlement/app.py")}
    built = args.build_dir
    if (built / FUNCTION / "app.py").is_file():
        sources["sam build package"] = child(built / "GatewayLayer/python", built / FUNCTION / "app.py")

    with start_anvil() as anvil:
        chain = Chain(anvil, KmsSigner(key_id).address)
        runs: dict[str, tuple[str, Callable[[], dict[str, str]]]] = {}
        for source, code in sources.items():
            runs[f"{source}, sweep"] = (code, lambda: chain.network(to_sweep=True))
            runs[f"{source}, idle"] = (code, lambda: chain.network(to_sweep=False))
        for code, network in runs.values():  # warm-up: .pyc of the source tree and the venv, OS file cache
            subprocess.run([sys.executable, "-c", code], env=base | network(), capture_output=True, check=True)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
        for _ in range(args.samples):  # interleaved, so machine noise hits every configuration alike
            for name, (code, network) in runs.items():
                results[name].append(_sample(code, base | network()))
    server.stop()

    print(f"samples: {args.samples}, python {sys.version.split()[0]} -B; boto3/botocore from the venv (.pyc present)")
    for name, rows in results.items():
        expected = ("pending", True) if name.endswith("sweep") else ("idle", False)
        got = {(str(r["outcome"]), bool(r["claimed"])) for r in rows}
        if got != {expected}:  # a figure of a run that did something else would mean nothing
            raise SystemExit(f"{name}: the first invocation did {sorted(got)}, not {expected}")
        init = statistics.median(r["init_ms"] for r in rows)
        cpu = statistics.median(r["init_cpu_ms"] for r in rows)
        first = statistics.median(r["first_ms"] for r in rows)
        first_cpu = statistics.median(r["first_cpu_ms"] for r in rows)
        to_return = statistics.median(r["to_return_ms"] for r in rows)
        whole = statistics.median(r["process_ms"] for r in rows)
        print(
            f"{name:28s} import+init {init:6.0f} ms (CPU {cpu:4.0f}) | first invocation {first:5.0f} ms "
            f"(CPU {first_cpu:4.0f}; min {min(r['first_ms'] for r in rows):4.0f}, "
            f"max {max(r['first_ms'] for r in rows):4.0f}) | start to return {to_return:5.0f} ms | "
            f"whole process {whole:5.0f} ms"
        )


if __name__ == "__main__":
    main()
