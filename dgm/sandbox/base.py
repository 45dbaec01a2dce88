"""The Sandbox protocol: every piece of untrusted code (agents solving tasks, agents rewriting
themselves, child self-tests, benchmark grading) runs through it.

A sandbox is created from a directory snapshot, which becomes its work directory
(``/work`` inside). Extra read-only or writable directories can be mounted, and the LLM
gateway's Unix socket is the only way out. Backends: bwrap (default on Linux), docker, local.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, Sequence, runtime_checkable

INSIDE_WORKDIR = "/work"
INSIDE_LLM_SOCKET = "/run/dgm/llm.sock"


class SandboxError(RuntimeError):
    """A sandbox could not be created or used (not: the command inside failed)."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096
    cpu_seconds: int = 3600
    file_size_mb: int = 512
    open_files: int = 1024
    processes: int = 512
    output_bytes: int = 1_000_000  # captured output is bounded: head and tail are kept


@dataclass(frozen=True)
class Mount:
    host: Path
    inside: str
    writable: bool = False


@dataclass
class SandboxSpec:
    source: Path | None = None  # snapshot copied into the work dir; None = empty work dir
    mounts: list[Mount] = field(default_factory=list)
    llm_socket: Path | None = None  # host path of the gateway socket, bound at INSIDE_LLM_SOCKET
    env: dict[str, str] = field(default_factory=dict)  # the only variables inside, plus PATH/HOME/LANG
    limits: Limits = field(default_factory=Limits)
    labels: dict[str, str] = field(default_factory=dict)  # e.g. run id, so leftovers can be cleaned up
    # Host dirs of compilers/runtimes outside /usr (rustup's toolchains, a JDK under /opt): visible
    # read-only at the same path, their bin/ first on PATH. The local backend sees them anyway.
    toolchains: list[Path] = field(default_factory=list)


@dataclass
class ExecResult:
    exit_code: int
    output: str  # stdout and stderr interleaved, bounded by Limits.output_bytes
    timed_out: bool = False
    duration_s: float = 0.0
    output_truncated: bool = False


def command_env(defaults: Mapping[str, str], spec: SandboxSpec, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The whole environment of a command inside: backend defaults, then the spec's, then the exec's."""
    env = {str(k): str(v) for k, v in {**defaults, **spec.env, **(extra or {})}.items()}
    if spec.toolchains:
        env["PATH"] = ":".join([*toolchain_bin_dirs(spec.toolchains), env.get("PATH", "")])
    return env


def check_toolchains(spec: SandboxSpec) -> None:
    for toolchain in spec.toolchains:
        if not Path(toolchain).is_absolute() or not Path(toolchain).is_dir():
            raise SandboxError(f"toolchain {toolchain}: not an absolute path of a directory on this host")


def toolchain_bin_dirs(toolchains: Sequence[Path]) -> list[str]:
    return [str(Path(t) / "bin") if (Path(t) / "bin").is_dir() else str(t) for t in toolchains]


@runtime_checkable
class Sandbox(Protocol):
    backend: str

    def exec(
        self,
        command: Sequence[str] | str,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str = INSIDE_WORKDIR,
    ) -> ExecResult:
        """Run a command (argv list, or a string for /bin/sh -c), one at a time per sandbox. When it
        returns, no process the command started is left: at the timeout all are killed, and so is
        whatever a finished command left running (a daemon, a double fork)."""

    def copy_in(self, host_path: Path, inside_path: str) -> None: ...

    def copy_out(self, inside_path: str, host_path: Path) -> None:
        """Copy out without following links that point outside the sandbox."""

    def close(self) -> None: ...

    def __enter__(self) -> "Sandbox": ...

    def __exit__(self, *exc) -> None: ...
