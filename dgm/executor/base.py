"""The Executor protocol: what passes between the driver (the loop) and where jobs run.

A `Job` is one piece of sandboxed work of an attempt: a self-modification, an agent's own tests,
or one task evaluation. It names a module-level function and plain-data arguments. The
directories the function reads (agent code) are listed in `inputs` by argument name, and it
writes its artifacts to `out_dir`. A remote executor ships the inputs as bytes (tar), runs the
function in a fresh directory on a worker and ships `out_dir` back; the in-process executor just
calls the function. Jobs never touch the run store: the driver records what they return. A job
whose agent calls the LLM carries its `llm_env` (gateway token); a try on a new worker gets a new token.

    fn(place: Workplace, *, out_dir: Path | None, [llm_env: dict,] **inputs_as_paths, **kwargs) -> plain data

`Workplace` is what the job finds where it runs: the sandbox policy of that machine (its gateway
socket) and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol

from dgm.agent_run import SandboxPolicy


class JobTimeout(RuntimeError):
    """The job ran past its deadline and was cancelled (with its sandbox)."""


class JobLost(RuntimeError):
    """Every try of the job died with its worker (node lost, worker killed)."""


@dataclass(frozen=True)
class Job:
    name: str  # "g001s0 self_modify": names the job in errors and logs
    fn: Callable[..., Any]  # a module-level function (remote workers import it by name)
    kwargs: dict[str, Any] = field(default_factory=dict)  # plain data (picklable)
    inputs: dict[str, Path] = field(default_factory=dict)  # argument name -> directory the job reads
    out_dir: Path | None = None  # where the job's artifacts land on the driver
    timeout_s: float = 3600.0  # past this the job is cancelled; a sandbox's own timeout comes first
    llm_env: dict[str, str] | None = None  # how its agent reaches the gateway (fn gets it as `llm_env`)

    @property
    def llm_token(self) -> str | None:
        return self.llm_env.get("OPENAI_API_KEY") if self.llm_env else None

    def calling_with(self, llm_token: str) -> "Job":
        """The same job, its agent calling the gateway with `llm_token` (a retry's token)."""
        return replace(self, llm_env={**self.llm_env, "OPENAI_API_KEY": llm_token})


@dataclass
class Workplace:
    policy: SandboxPolicy
    benchmark: Any = None  # dgm.bench.base.Benchmark, loaded where the job runs


class Executor(Protocol):
    slots: int  # jobs running at once, across the whole run: the run-wide concurrency limit

    def run(self, job: Job) -> Any:
        """Run `job` (blocking the calling thread until a slot is free and the job is done); its result.

        Raises what the job's function raised, JobTimeout, or JobLost.
        """

    def close(self) -> None: ...


def call(job: Job, place: Workplace, inputs: dict[str, Path], out_dir: Path | None) -> Any:
    """Call the job's function as the calling convention says (shared by both executors)."""
    llm = {"llm_env": job.llm_env} if job.llm_env is not None else {}
    return job.fn(place, out_dir=out_dir, **inputs, **llm, **job.kwargs)
