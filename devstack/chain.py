"""The local chain of the dev stack: anvil mining a block every second, the repo's TestUSDT
deployed on it, and test USDT minted to the payer, anvil's first default account. For contract
mode, the settlement contracts are deployed first and the relayer funded (devstack/settlement.py).

What `python -m devstack pay` needs to pay an order is written to state_dir/chain.json. No key
is written anywhere: anvil's default accounts are unlocked, so eth_sendTransaction from the
payer is enough.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.wallet import write_private

if TYPE_CHECKING:
    from devstack.evm import Anvil
    from devstack.settlement import Contracts

CHAIN_FILE = "chain.json"
NETWORK = "local"  # the built-in network of usdt_gateway.networks for this chain
BLOCK_TIME_S = 1  # blocks keep coming, so confirmations accrue without any transaction
MINTED_USDT = "1000000"
LATE_BY_S = 5  # how far past its expiry `pay --late` lands a payment, by default (block time)


@dataclass(frozen=True)
class ChainInfo:
    """The facts of the running chain that chain.json holds."""

    network: str
    rpc_url: str
    chain_id: int
    token_contract: str
    decimals: int
    payer: str  # holds the minted test USDT; unlocked on anvil

    def to_json(self) -> dict[str, str | int]:
        return {
            "network": self.network,
            "rpcUrl": self.rpc_url,
            "chainId": self.chain_id,
            "tokenContract": self.token_contract,
            "decimals": self.decimals,
            "payer": self.payer,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ChainInfo:
        return cls(
            network=str(data["network"]),
            rpc_url=str(data["rpcUrl"]),
            chain_id=int(str(data["chainId"])),
            token_contract=str(data["tokenContract"]),
            decimals=int(str(data["decimals"])),
            payer=str(data["payer"]),
        )


@dataclass
class LocalChain:
    anvil: Anvil
    info: ChainInfo
    file: Path
    contracts: Contracts | None = None  # contract mode's, when start_local_chain was given a relayer

    def networks_config(self) -> str:
        """NETWORKS_CONFIG for the gateway: the built-in `local` network with the deployed token."""
        return json.dumps({NETWORK: {"tokenContract": self.info.token_contract}})

    def rpc_endpoints(self, *, first: str | None = None) -> str:
        """The RPC endpoints configuration (what the SSM parameter holds) for this chain; `first`:
        another endpoint before anvil's (the scanner's preferred one, anvil then its second source)."""
        return json.dumps({NETWORK: [first, self.info.rpc_url] if first else [self.info.rpc_url]})

    def stop(self) -> None:
        self.anvil.stop()


def start_local_chain(state_dir: Path, *, relayer: str | None = None) -> LocalChain:
    """Start anvil, deploy TestUSDT, mint test USDT to the payer and write state_dir/chain.json.
    Given the settlement relayer's address, deploy the settlement contracts and fund the relayer
    before the mint."""
    # web3 and vyper take about a second to import: only starting a chain pays for them, not `pay`.
    from devstack import settlement
    from devstack.evm import CHAIN_ID, TOKEN_DECIMALS, deploy_token, mint, start_anvil, usdt

    anvil = start_anvil(block_time=BLOCK_TIME_S)
    try:
        w3 = anvil.web3()
        payer = str(w3.eth.accounts[0])
        # The set-up transactions are mined at once rather than one per block (2 s less to start);
        # then a block every BLOCK_TIME_S again.
        anvil.rpc("evm_setAutomine", [True])
        token = deploy_token(w3, payer)
        # Before the mint: the sandbox's reorg never replaces the mint's block, nor any before it.
        contracts = settlement.deploy(anvil, payer, relayer=relayer, chain_id=CHAIN_ID) if relayer else None
        mint(token, payer, usdt(MINTED_USDT), owner=payer)
        anvil.rpc("evm_setIntervalMining", [BLOCK_TIME_S])
        info = ChainInfo(
            network=NETWORK,
            rpc_url=anvil.url,
            chain_id=CHAIN_ID,
            token_contract=str(token.address),
            decimals=TOKEN_DECIMALS,
            payer=payer,
        )
        file = state_dir / CHAIN_FILE
        write_private(file, info.to_json())
    except BaseException:
        anvil.stop()
        raise
    return LocalChain(anvil=anvil, info=info, file=file, contracts=contracts)


def read_chain_info(state_dir: Path) -> ChainInfo:
    """The chain.json a running stack wrote; FileNotFoundError when there is none."""
    return ChainInfo.from_json(json.loads((state_dir / CHAIN_FILE).read_text(encoding="utf-8")))
