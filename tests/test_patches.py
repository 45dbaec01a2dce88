"""The framework computes patches itself; an agent's .git cannot influence them."""

import shutil
from pathlib import Path

import pytest

from dgm.patches import PatchError, apply_patch, diff_trees, make_git_repo, patch_stats


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_diff_includes_tracked_and_untracked_files_and_roundtrips(tmp_path):
    base = _tree(tmp_path / "base", {"a.py": "x = 1\n", "pkg/b.py": "y = 2\n"})
    result = tmp_path / "result"
    shutil.copytree(base, result)
    make_git_repo(result)
    (result / "a.py").write_text("x = 10\n")
    (result / "new.py").write_text("z = 3\n")  # untracked in the agent's repo
    (result / "pkg" / "b.py").unlink()
    (result / "__pycache__").mkdir()
    (result / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0junk")
    patch = diff_trees(base, result)
    assert "new.py" in patch and "pkg/b.py" in patch and "-x = 1" in patch
    assert "__pycache__" not in patch and ".git/" not in patch
    assert patch_stats(patch) == {"files": 3, "added": 2, "removed": 2}
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(base, rebuilt)
    apply_patch(rebuilt, patch)
    assert diff_trees(rebuilt, result) == ""


def test_unchanged_tree_gives_empty_patch(tmp_path):
    base = _tree(tmp_path / "base", {"a.py": "x = 1\n"})
    same = tmp_path / "same"
    shutil.copytree(base, same)
    make_git_repo(same)
    assert diff_trees(base, same) == ""


def test_agent_git_config_cannot_hide_changes(tmp_path):
    base = _tree(tmp_path / "base", {"a.py": "x = 1\n"})
    result = tmp_path / "result"
    shutil.copytree(base, result)
    make_git_repo(result)
    (result / ".git" / "config").write_text("[core]\n\tfsmonitor = touch /tmp/pwned\n[diff]\n\texternal = true\n")
    (result / "a.py").write_text("x = 2\n")
    assert "+x = 2" in diff_trees(base, result)


def test_patch_that_does_not_apply_names_the_reason(tmp_path):
    tree = _tree(tmp_path / "t", {"a.py": "something else\n"})
    bad = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    with pytest.raises(PatchError, match="a.py"):
        apply_patch(tree, bad)


def test_relative_paths_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _tree(tmp_path / "base", {"a.py": "x = 1\n"})
    shutil.copytree(tmp_path / "base", tmp_path / "result")
    (tmp_path / "result" / "a.py").write_text("x = 2\n")
    assert "+x = 2" in diff_trees(Path("base"), Path("result"))
