"""Signing latency of the relayer's transactions through the local stack's KMS: the moto server
(with devstack/moto_kms.py's DIGEST handling), over HTTP on loopback, from another process, as
the settlement function signs (usdt_gateway.kms_signer.KmsSigner on the gateway's botocore client).

Per transaction, a sweep-sized EIP-1559 transaction (the factory's sweep of 10 salts): the whole
`sign_transaction` (RLP, keccak, one KMS Sign, DER parsing, low s, recovery id), and within it
the KMS Sign call alone. The first transaction of a process also reads the public key
(GetPublicKey) and opens the connection; it is reported apart. Beside it, the same transactions
signed with a local key by eth-account: what signing costs without KMS.

This measures the local KMS, not AWS KMS: moto answers on the same machine, with no network, no
TLS and no HSM behind it.

    .venv/bin/python -m bench.kms_signing [--transactions 200]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
from pathlib import Path

import boto3

from bench.local_aws import point_at_moto
from devstack.moto_server import AtomicMotoServer

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, secrets, sys, time
sys.path[:0] = [{layer!r}]
from eth_account import Account
from usdt_gateway import aws
from usdt_gateway.kms_signer import Eip1559Transaction, KmsSigner
from usdt_gateway.settlement.calldata import sweep_calldata

class Timed:
    # The gateway's KMS client, its Sign calls timed.
    def __init__(self, client):
        self.client, self.sign_ms = client, []
    def get_public_key(self, **kwargs):
        return self.client.get_public_key(**kwargs)
    def sign(self, **kwargs):
        start = time.perf_counter()
        try:
            return self.client.sign(**kwargs)
        finally:
            self.sign_ms.append((time.perf_counter() - start) * 1000)

kms = Timed(aws.client("kms"))
signer = KmsSigner({key_id!r}, client=kms)
data = sweep_calldata("0x" + "11" * 20, [secrets.token_bytes(32) for _ in range(10)])
def tx(nonce):
    return Eip1559Transaction(chain_id=1, nonce=nonce, max_priority_fee_per_gas=10**9, max_fee_per_gas=50 * 10**9,
                              gas=600_000, to="0x" + "22" * 20, data=data)
start = time.perf_counter()
signer.sign_transaction(tx(0))
first_ms = (time.perf_counter() - start) * 1000
kms.sign_ms.clear()
total_ms = []
for nonce in range(1, {count} + 1):
    start = time.perf_counter()
    signer.sign_transaction(tx(nonce))
    total_ms.append((time.perf_counter() - start) * 1000)
local = Account.create()
local_ms = []
for nonce in range(1, {count} + 1):
    t = tx(nonce)
    fields = {{"type": 2, "chainId": 1, "nonce": nonce, "maxPriorityFeePerGas": t.max_priority_fee_per_gas,
              "maxFeePerGas": t.max_fee_per_gas, "gas": t.gas, "to": t.to, "value": 0, "data": "0x" + t.data.hex()}}
    start = time.perf_counter()
    local.sign_transaction(fields)
    local_ms.append((time.perf_counter() - start) * 1000)
print(json.dumps({{"first_ms": first_ms, "total_ms": total_ms, "sign_ms": kms.sign_ms, "local_ms": local_ms}}))
"""


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return (
        f"median {statistics.median(ordered):6.2f} ms | p90 {p90:6.2f} | p99 {p99:6.2f} | "
        f"min {ordered[0]:6.2f} | max {ordered[-1]:6.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server's line per request
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    point_at_moto(f"http://{host}:{port}", "bench-kms")
    key_id = boto3.client("kms").create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    code = CHILD.format(layer=str(ROOT / "layers/gateway"), key_id=key_id, count=args.transactions)
    out = subprocess.run(
        [sys.executable, "-B", "-c", code], env=os.environ.copy(), capture_output=True, text=True, check=True
    )
    server.stop()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["sign_ms"]) == len(result["total_ms"]) == args.transactions  # one Sign per transaction
    total, sign, local = result["total_ms"], result["sign_ms"], result["local_ms"]
    gateway = [t - s for t, s in zip(total, sign, strict=True)]
    print(
        f"{args.transactions} EIP-1559 sweep transactions (10 salts), python {sys.version.split()[0]}, local KMS (moto)"
    )
    print(f"first transaction (GetPublicKey + Sign, new connection): {result['first_ms']:.2f} ms")
    print(f"{'sign_transaction through KMS':36s} {_quantiles(total)}")
    print(f"{'  of which the KMS Sign call':36s} {_quantiles(sign)}")
    print(f"{'  of which the rest (RLP, recovery)':36s} {_quantiles(gateway)}")
    print(f"{'eth-account with a local key':36s} {_quantiles(local)}")


if __name__ == "__main__":
    main()
