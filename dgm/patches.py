"""Patches are computed by the framework, never reported by an agent.

Every git command here runs against a private git directory the framework creates, with system and
global configuration disabled: nothing an agent wrote into a work tree (a .git directory, hooks,
config, attributes with filter drivers) can influence or lie about the result.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from dgm.gitutil import isolated_env

EXCLUDES = "__pycache__/\n*.pyc\n.pytest_cache/\n*.egg-info/\n"


class PatchError(RuntimeError):
    pass


def _git(args: list[str], git_dir: Path, work_tree: Path | None = None, stdin: str | None = None) -> str:
    git_dir = Path(git_dir).resolve()
    work_tree = Path(work_tree).resolve() if work_tree is not None else None
    env = {**isolated_env(), "HOME": str(git_dir), "GIT_DIR": str(git_dir), "LC_ALL": "C"}
    if work_tree is not None:
        env["GIT_WORK_TREE"] = str(work_tree)
    proc = subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "core.quotepath=false", *args],
        cwd=work_tree or git_dir, env=env, input=stdin, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise PatchError(f"git {' '.join(args[:2])} failed: {proc.stderr.strip()[:2000]}")
    return proc.stdout


def _private_git_dir(root: Path) -> Path:
    git_dir = root / "git"
    _git(["init", "-q", "--bare", str(git_dir)], root)
    (git_dir / "info").mkdir(exist_ok=True)
    (git_dir / "info" / "exclude").write_text(EXCLUDES)
    return git_dir


def _snapshot(git_dir: Path, tree_dir: Path) -> str:
    index = git_dir / "index"
    index.unlink(missing_ok=True)
    _git(["add", "--all", "."], git_dir, tree_dir)
    return _git(["write-tree"], git_dir, tree_dir).strip()


def diff_trees(base: Path, result: Path) -> str:
    """The full binary git diff turning `base` into `result` (tracked and untracked files)."""
    with tempfile.TemporaryDirectory(prefix="dgm-diff-") as tmp:
        git_dir = _private_git_dir(Path(tmp))
        before, after = _snapshot(git_dir, base), _snapshot(git_dir, result)
        return _git(["diff", "--binary", "--no-color", "--no-ext-diff", "--no-renames", before, after], git_dir)


def apply_patch(tree: Path, patch: str) -> None:
    """Apply a patch to a directory's files; PatchError (with git's reason) if it does not apply."""
    if not patch.strip():
        return
    with tempfile.TemporaryDirectory(prefix="dgm-apply-") as tmp:
        git_dir = _private_git_dir(Path(tmp))
        _git(["apply", "--binary", "--whitespace=nowarn", "-"], git_dir, tree, stdin=patch)


def make_git_repo(tree: Path, message: str = "base") -> None:
    """Turn a plain directory into a git repository with one commit (agents expect `git diff` to work)."""
    env_dir = tree / ".git"
    subprocess.run(["git", "init", "-q", str(tree)], check=True, capture_output=True)
    (env_dir / "info").mkdir(exist_ok=True)
    (env_dir / "info" / "exclude").write_text(EXCLUDES)
    env = {**isolated_env(), "HOME": str(env_dir)}
    for args in (["add", "--all", "."], ["commit", "-q", "--allow-empty", "-m", message]):
        subprocess.run(["git", *args], cwd=tree, env=env, check=True, capture_output=True)


def patch_stats(patch: str) -> dict[str, int]:
    files = sum(1 for line in patch.splitlines() if line.startswith("diff --git "))
    added = sum(1 for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in patch.splitlines() if line.startswith("-") and not line.startswith("---"))
    return {"files": files, "added": added, "removed": removed}
