"""agents.git: every agent with code is a commit whose parent commit is its parent node's.

Lineage is git history, so `git --git-dir agents.git diff node/a node/b` compares any two agents.
Commits use a fixed author and date so the same code with the same parent always gets the same
SHA (a replayed run reproduces the repository exactly).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

import git

from dgm.executor.transfer import extract_safely
from dgm.gitutil import isolated_env

# Never snapshot caches or stray run outputs into an agent.
_EXCLUDES = ["__pycache__/", "*.pyc", ".pytest_cache/", "*.egg-info/", ".git"]


def node_tag(node_id: str) -> str:
    return f"node/{node_id}"


class AgentLineage:
    def __init__(self, git_dir: Path):
        self.git_dir = Path(git_dir)
        if not (self.git_dir / "HEAD").exists():
            git.Repo.init(self.git_dir, bare=True)
            (self.git_dir / "info").mkdir(exist_ok=True)
            (self.git_dir / "info" / "exclude").write_text("\n".join(_EXCLUDES) + "\n")
        self.repo = git.Repo(self.git_dir)

    def commit(self, node_id: str, agent_dir: Path, parent_id: str | None, message: str) -> str:
        """Snapshot agent_dir as node_id's commit (idempotent: re-committing moves the tag)."""
        with tempfile.TemporaryDirectory(prefix="dgm-index-") as tmp:
            env = {**isolated_env(), "GIT_INDEX_FILE": os.path.join(tmp, "index"), "GIT_WORK_TREE": str(agent_dir)}
            g = self.repo.git
            g.add("--all", ".", env=env)
            tree = g.write_tree(env=env)
            parents = ["-p", self.sha(parent_id)] if parent_id else []
            sha = g.commit_tree(tree, *parents, "-m", message, env=env)
        self.repo.git.tag("--force", node_tag(node_id), sha)
        return sha

    def has(self, node_id: str) -> bool:
        return node_tag(node_id) in {t.name for t in self.repo.tags}

    def sha(self, node_id: str) -> str:
        return self.repo.git.rev_parse(f"{node_tag(node_id)}^{{commit}}")

    def export(self, node_id: str, dest: Path) -> Path:
        """Write node_id's agent source into dest (created if needed)."""
        dest.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        self.repo.archive(buffer, node_tag(node_id), format="tar")
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as tar:
            return extract_safely(tar, dest)

    def diff(self, old_id: str, new_id: str) -> str:
        return self.repo.git.diff(node_tag(old_id), node_tag(new_id))

    def files(self, node_id: str) -> list[str]:
        return self.repo.git.ls_tree("-r", "--name-only", node_tag(node_id)).splitlines()
