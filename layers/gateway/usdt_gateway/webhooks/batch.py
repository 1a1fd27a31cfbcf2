"""Powertools' BatchProcessor, with a batch's records handled in threads: a delivery can wait up
to its timeout on a merchant's server, so a batch should take as long as its slowest delivery,
not the sum of them. Partial batch responses work as in BatchProcessor (a record whose handler
raises is reported as a batch item failure)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools.utilities.batch import BatchProcessor


class ThreadedBatchProcessor(BatchProcessor):
    def process(self) -> list[tuple]:
        if not self.records:
            return []
        with ThreadPoolExecutor(max_workers=len(self.records), thread_name_prefix="record") as pool:
            return list(pool.map(self._process_record, self.records))
