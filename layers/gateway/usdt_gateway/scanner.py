"""The deposit scanner of one network. One invocation holds the network's cursor lease and keeps
scanning as blocks arrive until its deadline, so detection is bound to block times, not to the
schedule. Each cycle:

1. read the head and the newest final block, then refresh the watch list (after the head, so
   every block scanned was produced after the list was complete; see watchlist.py);
2. final pass: scan (final cursor, newest final block] (bounded per cycle, so a backfill after
   downtime walks forward from the cursor, never jumps), check each deposit's block hash, drop
   seen deposits the final chain no longer has (and, in a range read again after a deep reorg,
   reverse final ones), have a second endpoint confirm each transfer (chain/second_source.py:
   one contradicted is held, never credited), then credit every transfer and advance the cursor;
3. seen pass: scan new blocks above it for early detection (order -> confirming);
4. close orders whose expiry the final blocks have passed.

Zero-value transfers are skipped, and transfers below the network's minimum deposit are only
recorded (deposits.record_ignored): anyone can send them to any address. A block counted final
that the chain has replaced (a reorg deeper than the finality policy) rewinds the cursor to the
newest checkpoint still on the chain, within the network's maxReorgDepth; past it the network's
cursor halts and the operator is paged (docs/operations.md).
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from usdt_gateway import clock as wall_clock
from usdt_gateway import cursor, deposits, expiry, outbox
from usdt_gateway.chain import second_source
from usdt_gateway.chain.endpoints import AllEndpointsFailed
from usdt_gateway.chain.jsonrpc import RpcError, RpcUnavailable
from usdt_gateway.chain.readers import BlockRef, ChainReader, Heads
from usdt_gateway.chain.second_source import Finding, Verdict
from usdt_gateway.chain.transfers import ChainMoved, Transfer
from usdt_gateway.config import settings
from usdt_gateway.observability import logger, metrics
from usdt_gateway.records import DepositStatus
from usdt_gateway.watchlist import CLOCK_SKEW_MS, WatchEntry, WatchList

ENDPOINT_CHECK_S = 30.0
# Deposits to different addresses are written at once by this many threads (see _by_address):
# each credit waits on a few DynamoDB round trips, so a block with many payments takes about as
# long as its busiest address, not as the sum of them.
DEPOSIT_WORKERS = 8
# The most a chain's timestamps may lag the gateway's clock and still have payments matched by
# their block time (docs/order-states.md): beyond it, a payment counts as made when its block says.
MAX_CHAIN_LAG_MS = 15 * 60_000
# The least time a seen pass may take before it leaves the rest to the next cycle.
SEEN_PASS_MIN_MS = 200


__all__ = ["ChainMoved", "ScanHalted", "ScanReport", "Scanner"]


class ScanHalted(Exception):
    """The network's cursor is halted (a reorg deeper than maxReorgDepth): nothing is scanned
    until an operator resumes it."""


@dataclass
class ScanReport:
    cycles: int = 0
    credited: int = 0
    unmatched: int = 0
    seen: int = 0
    dropped: int = 0
    ignored: int = 0
    reversed: int = 0
    disputed: int = 0  # held: a second endpoint contradicts them
    unverified: int = 0  # held: one endpoint, above the network's secondSourceAbove
    closed: int = 0
    errors: int = 0
    lease_busy: bool = False
    halted: bool = False
    final_block: int | None = None


@dataclass
class Scanner:
    reader: ChainReader
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    lease_ms: int = 30_000
    clock: Callable[[], float] = field(default=lambda: wall_clock.now_s())  # late-bound: a fake clock applies
    sleep: Callable[[float], None] = time.sleep
    workers: int = DEPOSIT_WORKERS
    # How long a seen pass may write before it leaves the rest to the next cycle; 0: half the
    # network's block time (at least SEEN_PASS_MIN_MS).
    seen_budget_ms: int = 0

    def __post_init__(self) -> None:
        self.network = self.reader.network
        self.watch = WatchList(self.network.name)
        self.report = ScanReport()
        self._last_check = 0.0
        # How far the chain's block timestamps run behind the gateway's clock (see _note_chain_clock).
        self.chain_lag_ms = 0
        self._calls_seen: Counter[str] = Counter()
        self._errors_seen: Counter[str] = Counter()
        # Deposits held awaiting a second source are asked of one once per scanner (cold start:
        # when endpoints can have been added), until that completes.
        self._unverified_checked = False

    def _now(self) -> int:
        return int(self.clock() * 1000)

    def run(self, *, until: float, stop: threading.Event | None = None) -> ScanReport:
        """Scan until `until` (epoch seconds) or `stop`, at least one cycle (so SCAN_SECONDS=0 scans
        once per schedule); waits for the lease while another scanner holds it."""
        idle = min(3.0, max(0.2, self.network.block_time_ms / 2000))

        def going() -> bool:
            return self.clock() < until and not (stop and stop.is_set())

        held = cursor.acquire(self.network.name, self.owner, now=self._now(), lease_ms=self.lease_ms)
        while held is None:
            self.report.lease_busy = True
            if not going():
                return self.report
            self.sleep(1.0)
            held = cursor.acquire(self.network.name, self.owner, now=self._now(), lease_ms=self.lease_ms)
        try:
            state = held
            while True:
                began, failed = self.clock(), False
                try:
                    state, caught_up = self.cycle(state)
                except ScanHalted:
                    self.report.halted = True
                    metrics.add_metric(name="ScannerHalted", unit=MetricUnit.Count, value=1)
                    break
                except (AllEndpointsFailed, RpcError, ChainMoved) as exc:
                    self.report.errors += 1
                    logger.warning("scan cycle failed; retrying from the cursor", extra={"reason": str(exc)})
                    caught_up = failed = True
                self.report.cycles += 1
                if not going():
                    break
                if caught_up:
                    # Poll every `idle` from each cycle's start: a long cycle (a block of many
                    # payments) is followed at once by the next, which may find the next block.
                    self.sleep(idle if failed else max(0.0, idle - (self.clock() - began)))
        except cursor.LeaseLost:
            logger.warning("lease lost to another scanner; stopping")
        finally:
            cursor.release(self.network.name, self.owner)
        return self.report

    def cycle(self, state: cursor.Cursor) -> tuple[cursor.Cursor, bool]:
        """One scan cycle; returns the new cursor and whether it has caught up with the chain.
        Its RPC calls and errors are counted whether it completes or fails: when every endpoint
        is down, that count (100 % errors) is what shows it."""
        try:
            return self._cycle(state)
        finally:
            self._rpc_metrics()

    def _cycle(self, state: cursor.Cursor) -> tuple[cursor.Cursor, bool]:
        if state.halted:
            logger.error("scan cursor halted; waiting for the operator", extra={"halted": state.halted})
            raise ScanHalted(self.network.name)
        self._check_endpoints()
        heads = self.reader.heads()
        now = self._now()
        if state.final_block is None:
            state = self._start(heads.final, now)
        self._note_chain_clock(state, heads, now)
        window = (settings().max_expires_in + settings().late_payment_grace_seconds) * 1000
        keep_from = min(now, state.final_time or now) - CLOCK_SKEW_MS
        self.watch.refresh(first_from=keep_from - window, keep_from=keep_from)
        # Each pass's events reach the queue together when it ends, and their order views take the
        # head just read (no cursor read per event): what a block of many payments costs.
        with cursor.scanning_at(self.network.name, heads.head), outbox.deferred():
            state = self._final_pass(state, heads.final)
            self._check_unverified()
        with cursor.scanning_at(self.network.name, heads.head), outbox.deferred():
            seen_block = self._seen_pass(state, heads)
        self._close_expired(state)
        cursor.note_progress(
            self.network.name,
            self.owner,
            seen_block=seen_block,
            head=heads.head,
            now=self._now(),
            lease_ms=self.lease_ms,
        )
        self._metrics(heads.head, state)
        assert state.final_block is not None
        return dataclasses.replace(state, seen_block=seen_block), state.final_block >= heads.final

    def _note_chain_clock(self, state: cursor.Cursor, heads: Heads, now: int) -> None:
        """Orders are created on the gateway's clock, payments carry their block's timestamp: on
        a chain whose timestamps lag (a slow or skewed chain), a prompt payment would look older
        than its order and miss it. Estimated from the final cursor's block when the scan is
        caught up (its age minus the blocks above it at the nominal block time), bounded, and
        added to block times when matching; CLOCK_SKEW_MS stays the allowance for clocks."""
        assert state.final_block is not None
        behind = heads.head - state.final_block
        if not state.final_time or behind > max(1, self.network.finality.confirmations) + 10:
            return  # a backfill: the nominal block time over many blocks says little
        lag = now - state.final_time - behind * self.network.block_time_ms
        self.chain_lag_ms = min(MAX_CHAIN_LAG_MS, max(0, lag))

    def _start(self, final: int, now: int) -> cursor.Cursor:
        """First scan: start at the newest final block, or earlier if orders already wait (their
        payments may be in blocks before it)."""
        self.watch.refresh(
            first_from=now - (settings().max_expires_in + settings().late_payment_grace_seconds) * 1000, keep_from=now
        )
        oldest = min((e.created_at for e in self.watch.entries()), default=now)
        back = (now - oldest + CLOCK_SKEW_MS) // self.network.block_time_ms if oldest < now else 0
        block = max(0, final - back)
        ref = self.reader.block(block)
        logger.info("scan cursor started", extra={"block": block})
        return cursor.start(
            self.network.name,
            self.owner,
            block=block,
            block_hash=ref.hash if ref else None,
            block_time=ref.time if ref else now,
            now=now,
            lease_ms=self.lease_ms,
        )

    def _with_blocks(self, found: list[Transfer], extra: set[int]) -> tuple[list[Transfer], dict[int, BlockRef]]:
        """Attach each transfer's block hash and time, read once per block; a log whose block
        hash differs from the block now at its height was read from a chain that has moved."""
        refs: dict[int, BlockRef] = {}
        for number in sorted({t.block_number for t in found} | extra):
            ref = self.reader.block(number)
            if ref is None:
                raise ChainMoved(f"block {number} is gone")
            refs[number] = ref
        out = []
        for t in found:
            ref = refs[t.block_number]
            if t.block_hash and t.block_hash != ref.hash:
                raise ChainMoved(f"block {t.block_number} changed while it was read")
            out.append(dataclasses.replace(t, block_hash=ref.hash, block_time=t.block_time or ref.time))
        return out, refs

    def _transfers(self, start: int, end: int) -> list[Transfer]:
        """The watched addresses' transfers in [start, end], without zero-value ones: a
        `transferFrom(victim, order, 0)` costs an attacker only gas and is recorded nowhere."""
        return [t for t in self.reader.transfers(self.watch.addresses(), start, end) if t.units > 0]

    def _final_pass(self, state: cursor.Cursor, final: int) -> cursor.Cursor:
        assert state.final_block is not None
        start, target = state.final_block + 1, min(final, state.final_block + self.reader.scan_range)
        if target < start:
            return state
        began = self._now()
        found, refs = self._with_blocks(self._transfers(start, target), {target, state.final_block})
        if self._now() - began > self.lease_ms // 3:
            # A long read (a backfill, a slow provider): make sure the lease is still ours, and
            # keep it, before crediting, so no other scanner takes over this range meanwhile.
            cursor.renew(self.network.name, self.owner, now=self._now(), lease_ms=self.lease_ms)
        if state.final_hash and refs[state.final_block].hash != state.final_hash:
            return self._rewind(state)
        # Drop (and reverse) before crediting: an order hears that a payment left before it
        # hears of what replaced it, and never reads paid twice meanwhile.
        keys = {(t.txid, t.log_index) for t in found}
        dropped = deposits.drop_reorged(self.network.name, target, keys, self.reader.located)
        if dropped:
            self.report.dropped += len(dropped)
            metrics.add_metric(name="DepositsDropped", unit=MetricUnit.Count, value=len(dropped))
        if state.rescan_to is not None and start <= state.rescan_to:
            reversed_ids, followed = deposits.reverse_vanished(
                self.network.name, start, target, keys, self.reader.located
            )
            if reversed_ids:
                self.report.reversed += len(reversed_ids)
                metrics.add_metric(name="DepositsReversed", unit=MetricUnit.Count, value=len(reversed_ids))
            if followed is not None:
                state = dataclasses.replace(state, rescan_to=max(state.rescan_to, followed))
        minimum = self.network.min_deposit_units
        matched = [
            (t, *self.watch.match(t.recipient, t.units, t.block_time, chain_lag_ms=self.chain_lag_ms)) for t in found
        ]
        # Before any write: a second endpoint that cannot tell yet fails the pass here, and the
        # next cycle asks again from the cursor (a slow second source delays, never loses).
        counted = [t for t in found if t.units >= minimum]
        findings = dict(zip(counted, second_source.check(self.reader, counted), strict=True))

        def settle(item: tuple[Transfer, WatchEntry | None, str | None]) -> tuple[deposits.Outcome, int]:
            """What became of one transfer, and (credited) how long after its block."""
            t, entry, owner = item
            if t.units < minimum:
                return deposits.record_ignored(t, owner), 0
            finding = findings[t]
            if finding.verdict in (Verdict.CONTRADICTED, Verdict.UNCONFIRMED):
                return self._hold(t, entry, owner, finding), 0
            outcome, _ = deposits.credit_final(t, entry, owner, confirmed_by=finding.endpoint)
            return outcome, max(0, self._now() - t.block_time)

        # Counted here, after the workers: the report and the metric set stay in this thread.
        for outcome, latency_ms in _by_address(matched, lambda m: m[0].recipient, settle, self.workers):
            if outcome == deposits.Outcome.IGNORED:
                self.report.ignored += 1
                metrics.add_metric(name="DepositsIgnored", unit=MetricUnit.Count, value=1)
            elif outcome == deposits.Outcome.CREDITED:
                self.report.credited += 1
                metrics.add_metric(name="DepositsCredited", unit=MetricUnit.Count, value=1)
                metrics.add_metric(name="DetectionLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
            elif outcome == deposits.Outcome.UNMATCHED:
                self.report.unmatched += 1
                metrics.add_metric(name="DepositsUnmatched", unit=MetricUnit.Count, value=1)
            else:
                self._count_held(outcome)
        end = refs[target]
        return cursor.advance_final(
            self.network.name,
            self.owner,
            state=state,
            block=target,
            block_hash=end.hash,
            block_time=end.time,
            depth=self.network.max_reorg_depth,
            now=self._now(),
            lease_ms=self.lease_ms,
        )

    def _hold(self, t: Transfer, entry: WatchEntry | None, owner: str | None, finding: Finding) -> deposits.Outcome:
        if finding.verdict == Verdict.CONTRADICTED:
            detail = f"{finding.endpoint}: {finding.detail}"
            return deposits.hold(t, entry, owner, DepositStatus.DISPUTED, source=self.reader.source, detail=detail)
        detail = f"one RPC endpoint; above secondSourceAbove ({self.network.second_source_above} USDT)"
        return deposits.hold(t, entry, owner, DepositStatus.UNVERIFIED, source=self.reader.source, detail=detail)

    def _count_held(self, outcome: deposits.Outcome) -> None:
        if outcome == deposits.Outcome.DISPUTED:
            self.report.disputed += 1
            metrics.add_metric(name="DepositsDisputed", unit=MetricUnit.Count, value=1)
        elif outcome == deposits.Outcome.UNVERIFIED:
            self.report.unverified += 1
            metrics.add_metric(name="DepositsUnverified", unit=MetricUnit.Count, value=1)

    def _check_unverified(self) -> None:
        """Deposits held awaiting a second source (recorded while the network had one endpoint):
        with two endpoints or more, another endpoint than the one that reported each is asked,
        and each is credited, or disputed, as the final pass would. Once per scanner when it
        completes; a second source that cannot tell yet is asked again next cycle."""
        if self._unverified_checked or not second_source.independent(self.reader):
            return
        for dep in deposits.held(self.network.name):
            if dep.status != DepositStatus.UNVERIFIED:
                continue
            t = deposits.transfer_of(dep)
            try:
                (finding,) = second_source.ask(self.reader, [t], exclude=dep.source)
            except (AllEndpointsFailed, RpcError, RpcUnavailable) as exc:
                logger.warning("held deposits not verified yet; asking again", extra={"reason": str(exc)})
                return
            if finding.verdict == Verdict.CONFIRMED:
                outcome, _ = deposits.credit_final(t, None, None, confirmed_by=finding.endpoint)
                if outcome == deposits.Outcome.CREDITED:
                    self.report.credited += 1
                    metrics.add_metric(name="DepositsCredited", unit=MetricUnit.Count, value=1)
            else:
                detail = f"{finding.endpoint}: {finding.detail}"
                outcome = deposits.hold(t, None, None, DepositStatus.DISPUTED, source=dep.source, detail=detail)
                self._count_held(outcome)
        self._unverified_checked = True

    def _rewind(self, state: cursor.Cursor) -> cursor.Cursor:
        """The chain replaced a block counted final (a reorg deeper than the finality policy):
        walk back to the newest checkpoint still on the chain, within maxReorgDepth, and rewind
        the cursor there, so the replaced range is read again; past the depth, halt and page."""
        assert state.final_block is not None
        metrics.add_metric(name="FinalityViolations", unit=MetricUnit.Count, value=1)
        logger.error(
            "a block counted final was replaced; walking back to the common ancestor",
            extra={"block": state.final_block, "hash": state.final_hash},
        )
        floor = state.final_block - self.network.max_reorg_depth
        for number, block_hash in reversed(state.checkpoints):
            if number >= state.final_block:
                continue
            if number < floor:
                break
            ref = self.reader.block(number)
            if ref is None:
                raise ChainMoved(f"block {number} is gone")
            if ref.hash == block_hash:
                logger.error(
                    "scan cursor rewound to the common ancestor; re-reading the replaced blocks",
                    extra={"from_block": state.final_block, "to_block": number},
                )
                return cursor.rewind(
                    self.network.name,
                    self.owner,
                    state=state,
                    block=number,
                    block_hash=ref.hash,
                    block_time=ref.time,
                    now=self._now(),
                    lease_ms=self.lease_ms,
                )
        reason = (
            f"block {state.final_block}, counted final, was replaced, and no block it recorded within "
            f"maxReorgDepth ({self.network.max_reorg_depth}) below it is still on the chain"
        )
        logger.critical("scan cursor halted: reorg deeper than maxReorgDepth", extra={"reason": reason})
        cursor.halt(self.network.name, self.owner, state=state, reason=reason, now=self._now())
        raise ScanHalted(self.network.name)

    def _seen_pass(self, state: cursor.Cursor, heads: Heads) -> int | None:
        assert state.final_block is not None
        # Blocks up to the newest final one are credited by the final passes (during a backfill
        # they are still ahead of the cursor): reading them here too would only cost calls.
        start = max(state.seen_block or 0, state.final_block, heads.final) + 1
        target = min(heads.head, start + self.reader.scan_range - 1)
        if target < start:
            return state.seen_block
        minimum = self.network.min_deposit_units
        found, _ = self._with_blocks([t for t in self._transfers(start, target) if t.units >= minimum], set())
        matched = [
            (t, entry)
            for t in found
            if (entry := self.watch.match(t.recipient, t.units, t.block_time, chain_lag_ms=self.chain_lag_ms)[0])
            is not None
        ]
        # Early detection must not hold up crediting: past half a block time the pass stops, and
        # what it left is seen next cycle, or credited straight away once final.
        deadline = self._now() + (self.seen_budget_ms or max(SEEN_PASS_MIN_MS, self.network.block_time_ms // 2))

        def see(m: tuple[Transfer, WatchEntry]) -> bool | None:
            if self._now() > deadline:
                return None
            return deposits.record_seen(*m).order is not None

        detected = _by_address(matched, lambda m: m[0].recipient, see, self.workers)
        self.report.seen += sum(1 for d in detected if d)
        for _ in filter(None, detected):
            metrics.add_metric(name="DepositsDetected", unit=MetricUnit.Count, value=1)
        left = [m[0].block_number for m, d in zip(matched, detected, strict=True) if d is None]
        return min(left) - 1 if left else target

    def _close_expired(self, state: cursor.Cursor) -> None:
        for entry in list(self.watch.entries()):
            if not entry.closed and entry.expires_at < state.final_time:
                expiry.close(entry, self.network.name)
                self.watch.mark_closed(entry)
                self.report.closed += 1

    def _check_endpoints(self) -> None:
        if len(self.reader.endpoints.endpoints) > 1 and self.clock() - self._last_check >= ENDPOINT_CHECK_S:
            self._last_check = self.clock()
            self.reader.check_endpoints()

    def _metrics(self, head: int, state: cursor.Cursor) -> None:
        """Lag, at the end of a cycle that completed: head - final cursor, in blocks, and now - the
        final block's time."""
        assert state.final_block is not None
        self.report.final_block = state.final_block
        metrics.add_metric(name="ScannerLagBlocks", unit=MetricUnit.Count, value=head - state.final_block)
        metrics.add_metric(
            name="ScannerLagSeconds", unit=MetricUnit.Seconds, value=max(0, (self._now() - state.final_time) // 1000)
        )

    def _rpc_metrics(self) -> None:
        """The RPC calls and errors since the last count (after every cycle, completed or failed),
        per network and, as their own metric set, per endpoint."""
        eps = self.reader.endpoints
        calls, errors = eps.calls - self._calls_seen, eps.errors - self._errors_seen
        self._calls_seen, self._errors_seen = Counter(eps.calls), Counter(eps.errors)
        if not calls and not errors:
            return
        metrics.add_metric(name="RpcCalls", unit=MetricUnit.Count, value=calls.total())
        metrics.add_metric(name="RpcErrors", unit=MetricUnit.Count, value=errors.total())
        for name in sorted(set(calls) | set(errors)):
            one = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
            one.add_dimension(name="network", value=self.network.name)
            one.add_dimension(name="endpoint", value=name)
            one.add_metric(name="RpcCalls", unit=MetricUnit.Count, value=calls[name])
            one.add_metric(name="RpcErrors", unit=MetricUnit.Count, value=errors[name])
            one.flush_metrics()


def _by_address[T, R](items: Sequence[T], address: Callable[[T], str], work: Callable[[T], R], workers: int) -> list[R]:
    """`work` on each item; returns the results in the items' order. The items of one recipient
    `address` run one after another in chain order, different addresses at once on up to
    `workers` threads. An address is one order's (xpub) or shared by a merchant's orders (a fixed
    address, told apart by amount), so no order is written by two threads at once and its
    deposits and events keep chain order; exactly-once stays with the conditional writes. A
    failure is raised only once no worker writes any more (groups not started yet never start),
    so a pass that failed does not move the cursor and the next cycle redoes what is left."""
    groups: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        groups.setdefault(address(item), []).append(k)
    if workers <= 1 or len(groups) <= 1:
        return [work(item) for item in items]
    results: dict[int, R] = {}

    def run(group: list[int]) -> None:
        for k in group:
            results[k] = work(items[k])

    pool = ThreadPoolExecutor(max_workers=min(workers, len(groups)), thread_name_prefix="deposit")
    try:
        # Each group runs in a copy of this thread's context: the log keys (ContextVars) go along.
        futures = [pool.submit(contextvars.copy_context().run, run, group) for group in groups.values()]
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for future in futures:
        if not future.cancelled() and (failure := future.exception()) is not None:
            raise failure
    return [results[k] for k in range(len(items))]
