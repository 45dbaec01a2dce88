"""Git with a fixed identity and clock, so the same tree gives the same commit SHA everywhere.

The user's git configuration (templates, hooks, autocrlf, signing, excludes) is ignored: a
benchmark's base commit must not depend on who prepares it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from dgm.gitutil import isolated_env

FIXED_DATE = "2024-01-01T00:00:00+0000"
IGNORED_NAMES = ("__pycache__", ".pytest_cache", "*.pyc", ".git", ".mypy_cache", ".ruff_cache")


class GitError(RuntimeError):
    """A git command failed; the message carries git's own output."""


def git_env() -> dict[str, str]:
    return isolated_env(name="dgm-bench", email="bench@dgm.invalid", date=FIXED_DATE)


def git(repo: Path, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "core.fileMode=true", "-c", "commit.gpgSign=false",
         "-c", "core.hooksPath=" + os.devnull, "-c", "safe.directory=*", *args],
        cwd=repo, env=git_env(), input=input, capture_output=True, text=True,
    )
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {repo}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def copy_source(src: Path, dest: Path) -> None:
    """Copy a source tree without caches; files get mode 644 so the tree hash is machine-independent."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*IGNORED_NAMES), dirs_exist_ok=True)
    for path in dest.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(dest).parts:
            path.chmod(0o644)


def init_repo(repo: Path) -> None:
    git(repo, "init", "-q", "-b", "main")


def commit_all(repo: Path, message: str) -> str:
    """Stage everything and commit with the fixed identity/date; returns the commit SHA."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def diff(repo: Path, *paths: str) -> str:
    """Plain unified `git diff` of the working tree (tracked and new files) against HEAD."""
    git(repo, "add", "-A", "--intent-to-add")
    return git(repo, "diff", "--no-color", "--no-ext-diff", "HEAD", "--", *paths).stdout
