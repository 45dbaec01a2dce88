"""The embedded executor: jobs run in the calling thread, at most `slots` at a time.

No set-up and no copying: the job's function gets the driver's own directories. A job's deadline is
enforced by its sandbox (every sandboxed command has a timeout and dies with it).
"""

from __future__ import annotations

from typing import Any

from dgm.concurrency import SandboxSlots

from .base import Job, Workplace, call


class InProcessExecutor:
    def __init__(self, place: Workplace, slots: int = 1):
        self.place = place
        self.slots = slots
        self.sandboxes = SandboxSlots(slots)  # ValueError below 1

    def run(self, job: Job) -> Any:
        with self.sandboxes.slot():
            if job.out_dir is not None:
                job.out_dir.mkdir(parents=True, exist_ok=True)
            return call(job, self.place, dict(job.inputs), job.out_dir)

    def close(self) -> None:
        pass
