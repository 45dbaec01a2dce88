"""The run-wide cap on sandboxes running at once (`run.max_concurrency`).

A generation runs `run.workers` attempts in parallel and each attempt evaluates its child with
`evaluation.workers` task workers, so k parents x task workers could start far more sandboxes than the
machine (or the Docker daemon) holds. Every unit of sandbox work takes one slot for as long as it runs:
a task (the agent's run and then its grading), a self-modification, a run of an agent's own tests.
Units never nest, so a slot is never requested while one is held and the cap cannot deadlock.

The in-process executor holds one (dgm/executor/inprocess.py); threads simply wait for a free slot. The
Ray executor bounds the jobs it has in flight on the driver the same way.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class SandboxSlots:
    def __init__(self, limit: int | None = None):
        """`limit` units may run at once; None means no cap (a single evaluation on its own)."""
        if limit is not None and limit < 1:
            raise ValueError(f"a concurrency limit must be >= 1 (got {limit})")
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit) if limit else None
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0  # the most units that ever ran at once (a run's record of its parallelism)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self._free is not None:
            self._free.acquire()
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            if self._free is not None:
                self._free.release()
