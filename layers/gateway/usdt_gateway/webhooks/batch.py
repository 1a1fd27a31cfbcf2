"""Powertools' BatchProcessor, with a batch's records handled in threads: a delivery can wait up
to its timeout on a merchant's server, so a batch should take as long as its slowest delivery,
not the sum of them. Partial batch responses work as in BatchProcessor (a record whose handler
raises is reported as a batch item failure)."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools.utilities.batch import BatchProcessor


class ThreadedBatchProcessor(BatchProcessor):
    def process(self) -> list[tuple]:
        if not self.records:
            return []
        # Each record in a copy of the invocation's context (its thread-local log keys), as the
        # scanner's deposit threads.
        contexts = [contextvars.copy_context() for _ in self.records]
        with ThreadPoolExecutor(max_workers=len(self.records), thread_name_prefix="record") as pool:
            return list(
                pool.map(lambda context, record: context.run(self._process_record, record), contexts, self.records)
            )
