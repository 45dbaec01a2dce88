"""The embedded executor: jobs run in the calling thread, at most `slots` at a time.

No set-up and no copying: the job's function gets the driver's own directories. A job's deadline is
enforced by its sandbox (every sandboxed command has a timeout and dies with it).
"""

from __future__ import annotations

import threading
from typing import Any

from .base import Job, Workplace, call


class InProcessExecutor:
    def __init__(self, place: Workplace, slots: int = 1):
        if slots < 1:
            raise ValueError(f"executor slots must be >= 1 (got {slots})")
        self.place = place
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots)

    def run(self, job: Job) -> Any:
        with self._free:
            if job.out_dir is not None:
                job.out_dir.mkdir(parents=True, exist_ok=True)
            return call(job, self.place, dict(job.inputs), job.out_dir)

    def close(self) -> None:
        pass
