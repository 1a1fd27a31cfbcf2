"""Powertools Tracer for the scanner, webhook and outbox functions (not the API: its import and
patching add ~30 ms to a cold start budgeted at 400 ms; see docs/benchmarks.md). Imported only by
those handlers. Only botocore is patched: the HTTP-level patches would record every request's
full URL in the trace, and RPC URLs carry provider keys, merchant URLs sometimes tokens. Off
where POWERTOOLS_TRACE_DISABLED is set (the local stack, the tests)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Tracer

tracer = Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "usdt-gateway"), patch_modules=("botocore",))
