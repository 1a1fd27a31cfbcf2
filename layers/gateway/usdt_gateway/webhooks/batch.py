"""Powertools' BatchProcessor, with a batch's records handled in threads: a delivery can wait up
to its timeout on a merchant's server, so a batch should take as long as its slowest delivery,
not the sum of them. Partial batch responses work as in BatchProcessor (a record whose handler
raises is reported as a batch item failure).

Threads rather than Powertools' AsyncBatchProcessor: the sender is blocking code (http.client for
the POST, boto3 for DynamoDB, SQS and KMS), it bounds a merchant's deliveries in this process
with threading semaphores, and its log keys are per thread. Under AsyncBatchProcessor each record
would still run in a thread (asyncio.to_thread), from a default pool of min(32, CPUs + 4)
threads, fewer than a batch of 10 on a function with one or two vCPUs: an event loop and a pool
size to manage more, for the same behaviour.

What this relies on: process() calls BatchProcessor._process_record, a Powertools internal, from
several threads at once on one processor. That is safe while the per-record path only reads
what was set for the batch and appends to the processor's lists. tests/unit/test_webhook_batch.py
pins it (the method's shape, no attribute assigned on that path, each failure reported when
records run side by side), so a Powertools upgrade that breaks it fails there."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor


class ThreadedBatchProcessor(BatchProcessor):
    def process(self) -> list[tuple[Any, ...]]:
        if not self.records:
            return []
        # Each record in a copy of the invocation's context (its thread-local log keys), as the
        # scanner's deposit threads.
        contexts = [contextvars.copy_context() for _ in self.records]
        with ThreadPoolExecutor(max_workers=len(self.records), thread_name_prefix="record") as pool:
            return list(
                pool.map(lambda context, record: context.run(self._process_record, record), contexts, self.records)
            )
