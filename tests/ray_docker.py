"""A real Ray cluster across Docker containers for tests: a head and two workers on a private
(`--internal`: no route out) docker network, from an image built offline (tests/fixtures/ray-node:
the debootstrapped base of dgm/sandbox/images.py + wheels downloaded on the host + dgm's source).

The driver (`python -m dgm.run`) runs on the head, so the ledger lives on one "machine"; the test
copies the run directory out when it is done.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "tests" / "fixtures" / "ray-node"
WHEELS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgm" / "ray-node-wheels"
SOURCE = ("dgm", "agents", "benchmarks", "experiments", "pyproject.toml")
LABEL = "dgm.test=ray-cluster"


def docker(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}...: {proc.stderr.strip()[-2000:]}")
    return proc


def base_image() -> str:
    """The debootstrapped Debian base of dgm's own images (dgm.sandbox.images), built if missing."""
    from dgm.sandbox.images import build_images, image_tag

    build_images("eval")  # the smallest target built on rootfs-base
    return image_tag("rootfs-base")


def _ignore(directory, names):
    return [n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")]


def _build(dockerfile: str, context: Path, tag: str, arg: str) -> str:
    if docker("image", "inspect", tag, check=False).returncode != 0:
        shutil.copy(RECIPE / dockerfile, context / "Dockerfile")
        docker("build", "--network", "none", "--build-arg", arg, "--label", LABEL, "-t", tag, str(context),
               timeout=3600)
    return tag


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:12]


def deps_image() -> str:
    """dgm-ray-deps:<hash of base and requirements>: slow to build (Ray's wheels), built once."""
    base = base_image()
    requirements = (RECIPE / "requirements.txt").read_bytes()
    tag = f"dgm-ray-deps:{_digest(base.encode(), requirements, (RECIPE / 'Dockerfile.deps').read_bytes())}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    WHEELS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python", "-m", "pip", "download", "-q", "-d", str(WHEELS), "--only-binary=:all:",
                    "-r", str(RECIPE / "requirements.txt")], check=True, timeout=1800)
    with tempfile.TemporaryDirectory(prefix="dgm-ray-deps-") as tmp:
        shutil.copytree(WHEELS, Path(tmp) / "wheels")
        shutil.copy(RECIPE / "requirements.txt", Path(tmp) / "wheels" / "requirements.txt")
        return _build("Dockerfile.deps", Path(tmp), tag, f"BASE={base}")


def node_image() -> str:
    """dgm-ray-node:<hash of the deps image and dgm's source>: this checkout's code on every node."""
    deps = deps_image()
    with tempfile.TemporaryDirectory(prefix="dgm-ray-node-") as tmp:
        source = Path(tmp) / "dgm-src"
        source.mkdir()
        for name in SOURCE:
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, source / name, ignore=_ignore)
            else:
                shutil.copy(REPO / name, source / name)
        files = sorted(p for p in source.rglob("*") if p.is_file())
        content = [str(p.relative_to(source)).encode() + p.read_bytes() for p in files]
        tag = f"dgm-ray-node:{_digest(deps.encode(), (RECIPE / 'Dockerfile').read_bytes(), *content)}"
        return _build("Dockerfile", Path(tmp), tag, f"DEPS={deps}")


@dataclass
class DockerCluster:
    network: str
    head: str
    workers: list[str]
    head_ip: str
    env: dict[str, str]

    @property
    def address(self) -> str:
        return f"{self.head_ip}:6379"

    def exec(self, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
        flags = [a for k, v in self.env.items() for a in ("-e", f"{k}={v}")]
        return docker("exec", *flags, self.head, *argv, timeout=timeout, check=False)


# Nodes run bwrap sandboxes as on any machine: they may create user namespaces (the default seccomp
# profile forbids it) and mount a fresh /proc (docker masks parts of its own).
SANDBOX_OPTS = ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                "--security-opt", "systempaths=unconfined"]


def _ip(container: str, network: str) -> str:
    return docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                  container).stdout.strip()


@contextmanager
def docker_cluster(image: str, workers: int = 2):
    """A head (no CPUs for jobs) and `workers` nodes with resource dgm_worker=1, on an internal network."""
    name = f"dgm-raytest-{secrets.token_hex(4)}"
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    env_flags = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    started: list[str] = []
    docker("network", "create", "--internal", "--label", LABEL, name)
    try:
        def run(container: str, command: str) -> None:
            docker("run", "-d", "--name", container, "--hostname", container, "--network", name, "--label", LABEL,
                   "--shm-size", "256m", "--memory", "3g", *SANDBOX_OPTS, *env_flags, image, "sh", "-c", command)
            started.append(container)

        me = 'python3 -c "import socket; print(socket.gethostbyname(socket.gethostname()))"'
        common = "--object-store-memory=100000000 --block"
        run(f"{name}-head", f'ray start --head --node-ip-address="$({me})" --port=6379 --num-cpus=0 '
            f"--include-dashboard=false {common}")
        head_ip = _ip(f"{name}-head", name)
        for i in range(workers):
            run(f"{name}-w{i}", f'ray start --address={head_ip}:6379 --node-ip-address="$({me})" --num-cpus=1 '
                f"--resources='{{\"dgm_worker\": 1}}' {common}")
        cluster = DockerCluster(name, f"{name}-head", [f"{name}-w{i}" for i in range(workers)], head_ip, env)
        _wait_for_nodes(cluster, 1 + workers)
        yield cluster
    finally:
        for container in started:
            docker("rm", "-f", container, check=False)
        docker("network", "rm", name, check=False)


def _wait_for_nodes(cluster: DockerCluster, count: int, timeout: float = 180) -> None:
    probe = ("import ray; ray.init(address='auto', logging_level='ERROR'); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = cluster.exec("python3", "-c", probe, timeout=120)
        last = proc.stdout.strip().splitlines()[-1:] or proc.stderr[-500:]
        if proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == str(count):
            return
        time.sleep(3)
    raise RuntimeError(f"the docker Ray cluster did not come up with {count} nodes: {last}")
