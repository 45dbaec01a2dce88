"""Where sandboxed work runs (DESIGN.md §9): one `Executor` protocol, two implementations.

    from dgm.executor import open_executor
    executor = open_executor(config, policy=policy, benchmark=benchmark, gateway=gateway)
    change = executor.run(self_modify_job(...))   # blocks this thread; at most `executor.slots` jobs at once

`InProcessExecutor` (the default, no set-up) runs jobs in the calling thread; `RayExecutor`
(`run.executor: ray`, `pip install -e '.[ray]'`) runs them on a Ray cluster. Either way the driver
alone writes the run store; a job's inputs travel as bytes and its artifacts come back as bytes.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys

from .base import Executor, Job, JobLost, JobTimeout, Workplace
from .inprocess import InProcessExecutor

__all__ = ["Executor", "InProcessExecutor", "Job", "JobLost", "JobTimeout", "Workplace", "gateway_host",
           "open_executor"]


def local_ray_environment() -> None:
    """Before Ray is imported (it reads these once): a local Ray for the run sends no usage statistics and,
    since its gRPC servers listen on every interface, lets in only holders of a fresh token."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules:
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(24))


def gateway_host(config) -> str | None:
    """Where the LLM gateway must also listen on TCP so workers reach it; None: its Unix socket suffices.

    A local Ray: loopback. A cluster: the driver's own address on the route to `ray.address` (the network
    the cluster already uses; looked up from the routing table, nothing is sent), unless `ray.gateway_host`.
    """
    if config.run.executor != "ray":
        return None
    if config.ray.gateway_host:
        return config.ray.gateway_host
    if not config.ray.address:
        return "127.0.0.1"
    host, _, port = config.ray.address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"ray.address {config.ray.address!r}: expected HOST:PORT of the head node "
                         "(or set ray.gateway_host to the driver's address on the cluster network)")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((host, int(port)))  # a UDP "connect" only picks the route
        return probe.getsockname()[0]
    except OSError as exc:
        raise ValueError(f"ray.address {config.ray.address!r}: no route to the head node ({exc})") from None
    finally:
        probe.close()


def open_executor(config, *, policy, benchmark, gateway, slots: int | None = None) -> Executor:
    """The executor `run.executor` names; `slots` = sandboxed jobs running at once across the run."""
    slots = slots or config.run.max_concurrency
    if config.run.executor == "inprocess":
        return InProcessExecutor(Workplace(policy, benchmark), slots=slots)
    if not config.ray.address:
        local_ray_environment()
    from .ray_executor import RayExecutor

    return RayExecutor(config.ray, policy=policy, benchmark_spec=(config.evaluation.benchmark,
                       dict(config.evaluation.benchmark_options)), gateway=gateway, slots=slots)
