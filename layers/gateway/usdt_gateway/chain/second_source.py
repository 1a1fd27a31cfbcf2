"""A second RPC endpoint's word on the transfers a final pass is about to credit, so that no single
endpoint's answer credits money on its own: a compromised or hostile provider, a hijacked DNS
name or a misconfigured proxy can answer a Transfer log (or a Tron transaction info) for a
payment that never happened, consistently in everything it serves.

With two endpoints or more, each transfer is asked of another endpoint than the one whose range
read found it (`ChainReader.source`), independently, one call per deposit, and never on a pass
that credits nothing:

- EVM: `eth_getTransactionReceipt` (one batch request for the pass's transfers): the receipt
  must be in the block the first endpoint reported (its number and hash), with status 0x1, and
  its log at the deposit's position within the transaction must be a Transfer of the token from
  the sender to the recipient of that amount.
- Tron: `wallet/gettransactioninfobyid`: in the same block number (Tron's final blocks are
  irreversible), SUCCESS, and the log at the deposit's position a Transfer of the token (by the
  log's address: a payment made through another contract calls that contract) of that amount.

What the other endpoint answers is a Finding: `confirmed`, or `contradicted` (the deposit is held,
disputed: never credited on its own). Where its receipt or info does not match, a second call
tells "contradicted" from "cannot tell yet": its block at that height. No block there (it lags),
or another block there that is not final by its own head: it cannot tell yet, and `NotYet` (an
RpcUnavailable) fails the call over to the next endpoint, or the pass, so the scanner retries
from its cursor: a slow second endpoint delays a credit, never loses one. The same block there
(the transaction is not in it), or another block there that it counts final too: the two
endpoints disagree on a final block, which waiting will not resolve, so it is contradicted.

With three endpoints or more, the first other endpoint that answers decides (in order of
preference; one that fails or lags passes the question on): any contradiction holds the deposit,
however many others would confirm it. With one endpoint there is no second source: the network's
`secondSourceAbove` decides which deposits wait for one (`unverified`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from usdt_gateway.address_codec import tron_address_from_body, tron_body20
from usdt_gateway.chain import tron
from usdt_gateway.chain.jsonrpc import Rpc, RpcUnavailable, call_many
from usdt_gateway.chain.readers import ChainReader
from usdt_gateway.chain.transfers import TRANSFER_TOPIC, Transfer
from usdt_gateway.networks import Network


class Verdict(StrEnum):
    CONFIRMED = "confirmed"  # a second endpoint holds the same transfer in the same block
    CONTRADICTED = "contradicted"  # a second endpoint says otherwise: held, disputed
    UNCONFIRMED = "unconfirmed"  # one endpoint, above the network's secondSourceAbove: held, unverified
    TRUSTED = "trusted"  # one endpoint, at or below it: credited on that endpoint's word


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    endpoint: str | None = None  # the endpoint that answered (by name), if one was asked
    detail: str = ""  # what it said, when it contradicts


class NotYet(RpcUnavailable):
    """The endpoint cannot tell yet: it lags the block, or holds another one there that it does
    not count final. Another endpoint is asked, or the pass fails and is retried."""


def check(reader: ChainReader, transfers: Sequence[Transfer]) -> list[Finding]:
    """A finding per transfer, in order. Two endpoints or more: asked of one other than the
    reader's source. One endpoint: no call, the network's policy."""
    if not transfers:
        return []
    if not independent(reader):
        above = reader.network.second_source_above_units
        return [
            Finding(Verdict.UNCONFIRMED if above is not None and t.units > above else Verdict.TRUSTED)
            for t in transfers
        ]
    return ask(reader, transfers, exclude=reader.source)


def independent(reader: ChainReader) -> bool:
    """Whether the network has a second endpoint to ask: two names at least (endpoints are told
    apart by name, their host unless named; two URLs of one host are one source)."""
    return len({name for name, _ in reader.endpoints.endpoints}) >= 2


def ask(reader: ChainReader, transfers: Sequence[Transfer], *, exclude: str | None) -> list[Finding]:
    """What an endpoint other than `exclude` (the one that reported the transfers) says of each;
    NotYet, or AllEndpointsFailed when several were asked, while none can tell."""
    if not transfers:
        return []
    network = reader.network
    if network.family == "evm":
        name, said = reader.endpoints.answer(lambda rpc: evm_findings(rpc, network, transfers), exclude=exclude)
    else:
        name, said = reader.endpoints.answer(
            lambda node: [tron_finding(node, network, t) for t in transfers], exclude=exclude
        )
    return [Finding(verdict, name, detail) for verdict, detail in said]


Said = tuple[Verdict, str]


def _confirmed() -> Said:
    return Verdict.CONFIRMED, ""


def _contradicted(detail: str) -> Said:
    return Verdict.CONTRADICTED, detail


# -- EVM ------------------------------------------------------------------------------------------


def evm_findings(rpc: Rpc, network: Network, transfers: Sequence[Transfer]) -> list[Said]:
    """What `rpc` says of each transfer: one batch request of the transactions' receipts, and,
    only for a receipt that is not in the reported block, a look at that block."""
    txids = list(dict.fromkeys(t.txid for t in transfers))
    receipts = dict(zip(txids, call_many(rpc, [("eth_getTransactionReceipt", [txid]) for txid in txids]), strict=True))
    try:
        return [_evm_finding(rpc, network, t, receipts[t.txid]) for t in transfers]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RpcUnavailable(f"{rpc.label}: a receipt came without a valid shape") from None


def _evm_finding(rpc: Rpc, network: Network, t: Transfer, receipt: dict[str, Any] | None) -> Said:
    if (
        receipt
        and str(receipt["blockHash"]).lower() == t.block_hash.lower()
        and int(receipt["blockNumber"], 16) == t.block_number
    ):
        return _evm_receipt_says(network, t, receipt)
    where = f"in block {int(receipt['blockNumber'], 16)} ({receipt['blockHash']})" if receipt else "in no block"
    block = rpc.call("eth_getBlockByNumber", [hex(t.block_number), False])
    if not block:
        raise NotYet(f"{rpc.label}: has no block {t.block_number} yet")
    if str(block["hash"]).lower() == t.block_hash.lower():
        return _contradicted(f"it has block {t.block_number} ({t.block_hash}); the transaction is {where}")
    if _evm_final(rpc, network) < t.block_number:
        raise NotYet(f"{rpc.label}: its block {t.block_number} is another one, not final yet")
    return _contradicted(
        f"its final block {t.block_number} is {block['hash']}, not {t.block_hash}; the transaction is {where}"
    )


def _evm_final(rpc: Rpc, network: Network) -> int:
    head = int(rpc.call("eth_blockNumber", []), 16)
    if network.finality.mode == "confirmations":
        return head - max(1, network.finality.confirmations) + 1
    return min(head, int(rpc.call("eth_getBlockByNumber", ["finalized", False])["number"], 16))


def _evm_receipt_says(network: Network, t: Transfer, receipt: dict[str, Any]) -> Said:
    if receipt.get("status") != "0x1":
        return _contradicted(f"the transaction failed (status {receipt.get('status')})")
    logs = {int(log["logIndex"], 16): log for log in receipt.get("logs") or []}
    if not logs:
        return _contradicted("its receipt holds no log")
    # The deposit's log index counts within its transaction (readers.EvmReader._in_transaction).
    log = logs.get(min(logs) + t.log_index)
    if log is None:
        return _contradicted(f"its receipt has no log {t.log_index}")
    topics = [str(topic).lower() for topic in log.get("topics") or []]
    if (
        str(log.get("address", "")).lower() != network.token_contract.lower()
        or len(topics) != 3
        or topics[0][2:] != TRANSFER_TOPIC
    ):
        return _contradicted(f"its log {t.log_index} is not a Transfer of {network.token_contract}")
    recipient, sender = "0x" + topics[2][-40:], "0x" + topics[1][-40:]
    if recipient != t.recipient.lower() or sender != t.sender.lower():
        return _contradicted(f"its log {t.log_index} is a transfer from {sender} to {recipient}")
    return _same_units(int(log.get("data") or "0x0", 16), t)


def _same_units(units: int, t: Transfer) -> Said:
    if units != t.units:
        return _contradicted(f"it transfers {units} base units, not {t.units}")
    return _confirmed()


# -- Tron -----------------------------------------------------------------------------------------


def tron_finding(node: tron.Provider, network: Network, t: Transfer) -> Said:
    """What `node` says of one transfer: its transaction info, and, only when that is not in the
    reported block, a look at that block and the node's heads."""
    label = str(getattr(node, "label", "") or "node")
    try:
        info = node.make_request("wallet/gettransactioninfobyid", {"value": t.txid})
        if isinstance(info, dict) and info.get("id") == t.txid and info.get("blockNumber") == t.block_number:
            return _tron_info_says(network, t, info)
        number = info.get("blockNumber") if isinstance(info, dict) else None
        where = f"in block {number}" if number is not None else "in no block"
        block = node.make_request("wallet/getblockbynum", {"num": t.block_number})
        if not isinstance(block, dict) or "blockID" not in block:
            raise NotYet(f"{label}: has no block {t.block_number} yet")
        if block["blockID"] == t.block_hash:
            return _contradicted(f"it has block {t.block_number} ({t.block_hash}); the transaction is {where}")
        head, solid = tron.heads(node)
        final = head - max(1, network.finality.confirmations) + 1
        if network.finality.mode != "confirmations":
            final = min(head, solid)
        if final < t.block_number:
            raise NotYet(f"{label}: its block {t.block_number} is another one, not final yet")
        return _contradicted(
            f"its final block {t.block_number} is {block['blockID']}, not {t.block_hash}; the transaction is {where}"
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RpcUnavailable(f"{label}: a transaction info came without a valid shape") from None


def _tron_info_says(network: Network, t: Transfer, info: dict[str, Any]) -> Said:
    if not tron.succeeded(info):
        return _contradicted(f"the transaction failed ({info.get('receipt', {}).get('result') or info.get('result')})")
    logs = info.get("log") or []
    if t.log_index >= len(logs):
        return _contradicted(f"its info has no log {t.log_index}")
    log = logs[t.log_index]
    topics = [str(topic).lower() for topic in log.get("topics") or []]
    if (
        str(log.get("address", "")).lower() != tron_body20(network.token_contract).hex()
        or len(topics) != 3
        or topics[0] != TRANSFER_TOPIC
    ):
        return _contradicted(f"its log {t.log_index} is not a Transfer of {network.token_contract}")
    recipient = tron_address_from_body(bytes.fromhex(topics[2][-40:]))
    sender = tron_address_from_body(bytes.fromhex(topics[1][-40:]))
    if recipient != t.recipient or sender != t.sender:
        return _contradicted(f"its log {t.log_index} is a transfer from {sender} to {recipient}")
    return _same_units(int(log.get("data") or "0", 16), t)


__all__ = ["Finding", "NotYet", "Verdict", "ask", "check", "independent"]
