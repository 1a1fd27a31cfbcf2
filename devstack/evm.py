"""The local EVM chain of the dev stack and the tests: anvil (installed by npm from
package-lock.json), plus the test USDT token and a batch-payer contract compiled from
contracts/*.vy with vyper, in-process and offline.

    with start_anvil() as anvil:
        w3 = anvil.web3()
        owner = w3.eth.accounts[0]              # anvil's default accounts are unlocked
        token = deploy_token(w3, owner)
        mint(token, owner, usdt("1000"), owner=owner)

Development and test tooling only: the gateway's own code never imports this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"
CONTRACTS_DIR = REPO_ROOT / "contracts"
TOKEN_SOURCE = CONTRACTS_DIR / "TestUSDT.vy"
BATCH_PAYER_SOURCE = CONTRACTS_DIR / "BatchPayer.vy"

CHAIN_ID = 31337
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
TOKEN_DECIMALS = 6

# npm installs the binary of the running platform from one of these optional dependencies
# of @foundry-rs/anvil.
_PLATFORM_PACKAGES: dict[tuple[str, str], str] = {
    ("linux", "x86_64"): "anvil-linux-amd64",
    ("linux", "amd64"): "anvil-linux-amd64",
    ("linux", "aarch64"): "anvil-linux-arm64",
    ("linux", "arm64"): "anvil-linux-arm64",
    ("darwin", "x86_64"): "anvil-darwin-amd64",
    ("darwin", "arm64"): "anvil-darwin-arm64",
    ("win32", "amd64"): "anvil-win32-amd64",
    ("win32", "x86_64"): "anvil-win32-amd64",
}


def anvil_binary() -> Path:
    """The anvil executable npm installed under node_modules (`make` installs it)."""
    package = _PLATFORM_PACKAGES.get((sys.platform, platform.machine().lower()))
    candidates: list[Path] = []
    if package is not None:
        name = "anvil.exe" if sys.platform == "win32" else "anvil"
        candidates.append(NODE_MODULES / "@foundry-rs" / package / "bin" / name)
    # The npm wrapper (a node script) finds a binary its postinstall step downloaded, if any.
    candidates.append(NODE_MODULES / ".bin" / "anvil")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"anvil is not installed (looked for {', '.join(str(p) for p in candidates)}); "
        "run `make` (or `npm ci`) in the repository root to install it from package-lock.json"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def _rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 2.0) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    # Only ever the http://127.0.0.1 URL built here.
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    with _NO_PROXY.open(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass
class Anvil:
    """A running anvil node on loopback; `stop` (or leaving a `with` block) ends it."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    _log: IO[bytes] = field(repr=False)

    def web3(self) -> Web3:
        """A web3 client of this node."""
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """One raw JSON-RPC call; returns `result`, raises on `error`."""
        return _rpc(self.url, method, params, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _launch(port: int, block_time: float | None) -> Anvil:
    args = [str(anvil_binary()), "--host", HOST, "--port", str(port), "--chain-id", str(CHAIN_ID), "--silent"]
    if block_time is not None:
        args += ["--block-time", f"{block_time:g}"]
    log = tempfile.TemporaryFile()  # noqa: SIM115 (owned by the Anvil; anvil's output, shown if it fails to start)
    # A session of its own: a Ctrl-C in the terminal reaches only the stack, which stops the
    # scanner before the chain; anvil stopping first would fail the scanner's last cycles.
    process = subprocess.Popen(  # noqa: S603
        args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Anvil(url=f"http://{HOST}:{port}", port=port, process=process, _log=log)


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _wait_ready(anvil: Anvil, deadline: float) -> bool:
    """True once the node answers eth_chainId; False if the process exited first."""
    while time.monotonic() < deadline:
        if anvil.process.poll() is not None:
            return False
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError, RuntimeError):
            if int(_rpc(anvil.url, "eth_chainId", timeout=1.0), 16) == CHAIN_ID:
                return anvil.process.poll() is None
        time.sleep(0.01)
    raise TimeoutError(f"anvil on {anvil.url} did not answer eth_chainId within {START_TIMEOUT:g} s")


def start_anvil(*, port: int = 0, block_time: float | None = None) -> Anvil:
    """Start anvil on 127.0.0.1 (a free port when `port` is 0) with chain id 31337.

    Without `block_time` every transaction is mined at once in its own block (automine);
    with it, a block is mined every `block_time` seconds. Returns once eth_chainId answers."""
    if port and _port_taken(port):
        raise OSError(f"port {port} on {HOST} is already in use")
    deadline = time.monotonic() + START_TIMEOUT
    output = ""
    attempts = 3 if port == 0 else 1  # a free port can be taken by someone else before anvil binds it
    for _ in range(attempts):
        anvil = _launch(port or _free_port(), block_time)
        try:
            if _wait_ready(anvil, deadline):
                return anvil
        except BaseException:
            anvil.stop()
            raise
        anvil._log.seek(0)
        output = anvil._log.read().decode(errors="replace").strip()
        anvil.stop()
    raise RuntimeError(f"anvil exited with code {anvil.process.returncode}: {output}")


_compiled: dict[str, tuple[list[dict[str, Any]], str]] = {}


def compile_contract(path: Path) -> tuple[list[dict[str, Any]], str]:
    """(abi, deploy bytecode as 0x-hex) of a Vyper source file; cached by the file's content."""
    source = path.read_text()
    key = hashlib.sha256(source.encode()).hexdigest()
    if key not in _compiled:
        import vyper  # only the tooling that deploys contracts pays for the import

        output = vyper.compile_code(source, contract_path=path.name, output_formats=["abi", "bytecode"])
        _compiled[key] = (output["abi"], output["bytecode"])
    abi, bytecode = _compiled[key]
    return list(abi), bytecode


def _wait(w3: Web3, tx_hash: HexBytes) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def _deploy(w3: Web3, path: Path, owner: str) -> Contract:
    abi, bytecode = compile_contract(path)
    tx_hash = w3.eth.contract(abi=abi, bytecode=bytecode).constructor().transact({"from": owner})
    address = _wait(w3, tx_hash)["contractAddress"]
    assert address is not None
    return w3.eth.contract(address=address, abi=abi)


def deploy_token(w3: Web3, owner: str) -> Contract:
    """Deploy TestUSDT ("Test Tether USD", USDT, 6 decimals) from `owner`, an unlocked account
    of the node (e.g. `w3.eth.accounts[0]` on anvil); only `owner` can mint."""
    return _deploy(w3, TOKEN_SOURCE, owner)


def deploy_batch_payer(w3: Web3, owner: str) -> Contract:
    """Deploy BatchPayer: `pay(token, recipients, amounts)` pays each recipient with
    `token.transferFrom(msg.sender, ...)` in one transaction (approve it on the token first)."""
    return _deploy(w3, BATCH_PAYER_SOURCE, owner)


def usdt(amount: str | int | Decimal) -> int:
    """Token units of a USDT amount: usdt("25.5") == 25_500_000."""
    units = Decimal(amount).scaleb(TOKEN_DECIMALS)
    if units != units.to_integral_value():
        raise ValueError(f"{amount} USDT has more than {TOKEN_DECIMALS} decimals")
    return int(units)


def mint(token: Contract, to: str, amount: int, *, owner: str) -> TxReceipt:
    """Mint `amount` token units to `to`; `owner` is the account that deployed the token."""
    tx_hash = token.functions.mint(Web3.to_checksum_address(to), amount).transact({"from": owner})
    return _wait(token.w3, tx_hash)
