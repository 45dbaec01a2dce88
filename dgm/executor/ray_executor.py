"""The Ray executor: each job is a Ray task on a cluster; the driver keeps the ledger.

Connecting: `ray.address` names a running cluster (`ray start --head` on one machine, `ray start
--address` on the others); without it a local Ray is started for the run (on 127.0.0.1 as far as
Ray allows: its gRPC servers listen on every interface, so it requires a fresh token, see
`local_ray_environment` in __init__.py; no dashboard, no usage statistics).

A job on a worker: its input directories arrive as bytes and are unpacked in a fresh directory,
a relay (relay.py) gives its sandboxes a gateway socket that leads to the driver's gateway over
TCP, and the function runs; its result and its `out_dir`, packed as bytes, come back to the driver,
which unpacks them into the run directory. Nothing on a worker writes the run store.

Failures: a job whose worker or node dies is run again (up to `ray.max_retries` times), on any node
that is still alive. Before the retry the gateway forgets the sample indices of the job's token, so
the retry's requests line up with the answers already recorded and are served from the gateway's
cache: a call that succeeded is never paid twice, and one still upstream when the worker died is
shared with the retry that asks it again (the gateway's in-flight calls). A job past its deadline is cancelled by killing
its worker process, and its sandbox dies with it (sandboxes die with their owner).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from dgm.agent_run import SandboxPolicy

from .base import Job, JobLost, JobTimeout, Workplace, call
from .relay import unix_relay
from .transfer import pack, unpack

try:
    import ray
    from ray import exceptions as ray_errors
except ImportError:  # pragma: no cover - the optional extra is missing
    ray = None

log = logging.getLogger(__name__)

# Failures of the machinery, not of the job: the job is run again elsewhere.
_LOST = tuple(getattr(ray_errors, name) for name in (
    "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError",
    "RaySystemError", "ObjectFetchTimedOutError") if ray is not None and hasattr(ray_errors, name))


# -- on the worker ----------------------------------------------------------------------------------
_benchmarks: dict[str, Any] = {}
_benchmarks_lock = threading.Lock()


def _benchmark(spec: tuple[str, dict] | None):
    """The run's benchmark, loaded once per worker process from its name and options."""
    if spec is None:
        return None
    key = json.dumps(spec, sort_keys=True, default=str)
    with _benchmarks_lock:
        if key not in _benchmarks:
            from dgm.bench import load_benchmark

            _benchmarks[key] = load_benchmark(spec[0], **spec[1])
        return _benchmarks[key]


JOB_DIR_PREFIX = "dgm-job-"


@contextmanager
def _job_dir():
    """A fresh directory for one job, locked while the job lives. A job whose worker was killed leaves
    its directory behind; the next job on this machine removes every such directory (its lock is free)."""
    for stale in Path(tempfile.gettempdir()).glob(JOB_DIR_PREFIX + "*"):
        _remove_if_abandoned(stale)
    root = Path(tempfile.mkdtemp(prefix=JOB_DIR_PREFIX))
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _remove_if_abandoned(directory: Path) -> None:
    try:
        with open(directory / ".lock") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live job: BlockingIOError
    except BlockingIOError:
        return
    except OSError:  # no lock file: a job just starting, or not ours
        return
    shutil.rmtree(directory, ignore_errors=True)


def run_on_worker(job: Job, blobs: list, input_blob: dict[str, int], policy: SandboxPolicy,
                  benchmark_spec: tuple[str, dict] | None, gateway: tuple[str, int]) -> tuple[Any, bytes | None]:
    """One job on this machine: unpack inputs, relay to the gateway, call, pack the artifacts."""
    blobs = ray.get(list(blobs))  # object refs inside a list are not resolved by Ray itself
    with _job_dir() as root:
        dirs = [unpack(blob, root / f"in{i}") for i, blob in enumerate(blobs)]
        inputs = {name: dirs[index] for name, index in input_blob.items()}
        out_dir = None
        if job.out_dir is not None:
            out_dir = root / "out"
            out_dir.mkdir()
        with unix_relay(gateway) as socket_path:
            place = Workplace(replace(policy, llm_socket=socket_path), _benchmark(benchmark_spec))
            result = call(job, place, inputs, out_dir)
        return result, pack(out_dir) if out_dir is not None else None


# -- on the driver ----------------------------------------------------------------------------------
class RayExecutor:
    def __init__(self, cfg, *, policy: SandboxPolicy, benchmark_spec: tuple[str, dict] | None, gateway,
                 slots: int):
        if ray is None:
            raise RuntimeError("run.executor: ray needs the Ray extra: pip install -e '.[ray]'")
        if gateway.tcp_port is None:
            raise RuntimeError("run.executor: ray needs the LLM gateway listening on TCP (Gateway(tcp=True))")
        self.cfg = cfg
        self.policy = replace(policy, llm_socket=None)  # each worker gets its own relay socket
        self.benchmark_spec = benchmark_spec
        self.gateway = gateway
        self.gateway_address = (gateway.tcp_host, gateway.tcp_port)
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots)
        self._started_ray = connect(cfg)
        self._remote = ray.remote(max_retries=0)(run_on_worker)
        check_resources(cfg.resources, cfg.job_cpus)

    def run(self, job: Job) -> Any:
        with self._free:
            blobs, input_blob = _pack_inputs(job.inputs)
            refs = [ray.put(b) for b in blobs]  # put once: a retry re-sends nothing
            last_error: Exception | None = None
            for attempt in range(1 + self.cfg.max_retries):
                if attempt:
                    job = self._before_retry(job, last_error, attempt)
                ref = self._remote.options(num_cpus=self.cfg.job_cpus, resources=dict(self.cfg.resources),
                                           name=job.name).remote(job, refs, input_blob, self.policy,
                                                                 self.benchmark_spec, self.gateway_address)
                try:
                    result, artifacts = self._wait(job, ref)
                except _LOST as exc:
                    last_error = exc
                    continue
                if artifacts is not None and job.out_dir is not None:
                    unpack(artifacts, job.out_dir)
                return result
            raise JobLost(f"{job.name}: its worker died {1 + self.cfg.max_retries} times "
                          f"(last: {type(last_error).__name__}: {str(last_error).splitlines()[0][:300]})")

    def _wait(self, job: Job, ref) -> tuple[Any, bytes | None]:
        ready, _ = ray.wait([ref], timeout=job.timeout_s)
        if not ready:
            ray.cancel(ref, force=True)  # kills the worker process; its sandbox dies with its owner
            raise JobTimeout(f"{job.name}: no result after {job.timeout_s:.0f} s; cancelled")
        return ray.get(ref)

    def _before_retry(self, job: Job, error: Exception | None, attempt: int) -> Job:
        """The job for its next try: with a new gateway token, so the lost try's calls still on their way
        are refused and its paid answers are served to the retry from the gateway's record."""
        log.warning("%s: worker lost (%s); running it again (try %d)", job.name, type(error).__name__, attempt + 1)
        return job.calling_with(self.gateway.retry_token(job.llm_token)) if job.llm_token else job

    def close(self) -> None:
        if self._started_ray is not None and ray.is_initialized():
            ray.shutdown()


def _pack_inputs(inputs: dict[str, Path]) -> tuple[list[bytes], dict[str, int]]:
    """Each distinct directory once (a parent that modifies itself is both modifier and target)."""
    blobs, index_of, input_blob = [], {}, {}
    for name, path in inputs.items():
        key = Path(path).resolve()
        if key not in index_of:
            index_of[key] = len(blobs)
            blobs.append(pack(key))
        input_blob[name] = index_of[key]
    return blobs, input_blob


def connect(cfg) -> bool | None:
    """Join the cluster at `cfg.address`, or start a local Ray for this run. True if we started Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():  # the caller (a test, a notebook) connected already
        return None
    common = {"logging_level": logging.WARNING, "log_to_driver": False, "namespace": "dgm"}
    if cfg.address:
        try:
            ray.init(address=cfg.address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f"ray.address {cfg.address!r}: cannot join the Ray cluster: {exc}") from None
        return False
    ray.init(num_cpus=cfg.local_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
             object_store_memory=cfg.object_store_mb * 2**20, **common)
    return True


def check_resources(resources: dict[str, float], job_cpus: float) -> None:
    """Fail now, not hours later, if no node of the cluster can ever run a job."""
    needed = {"CPU": job_cpus, **resources}
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if not any(all(n["Resources"].get(k, 0) >= v for k, v in needed.items() if v) for n in nodes):
        offered = [{k: v for k, v in n["Resources"].items() if not k.startswith("node:")} for n in nodes]
        raise RuntimeError(f"ray.resources: no node of the cluster offers {needed} per job (nodes offer {offered})")
