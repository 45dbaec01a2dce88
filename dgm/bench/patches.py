"""Splitting unified diffs per file and removing the parts that touch tests.

A model patch may edit tests (to make them pass, or by accident); SWE-bench-style grading
drops those file diffs and resets tests to the base before applying the hidden test patch. Test
config files (pytest.ini, .pytest.ini, conftest.py, ...) and root modules that would shadow the
test runner (a `pytest.py` that prints "5 passed") are dropped the same way.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import PurePosixPath

TEST_DIRS = {"tests", "test", "testing"}
# pytest reads its config from the hidden and TOML variants too (pytest >= 7 and 9).
TEST_CONFIG_FILES = {"conftest.py", "pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "tox.ini", "noxfile.py"}
# Graders run `python -m pytest` from the repository root, so the root comes first on sys.path: a module
# added there under one of these names replaces the test runner (or a module it imports) with one that
# prints whatever results it likes. New root modules named like the standard library do the same.
RUNNER_MODULES = {"pytest", "_pytest", "pluggy", "py", "iniconfig", "packaging", "pygments", "exceptiongroup",
                  "tomli", "colorama", "sitecustomize", "usercustomize"}
_MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")
# Shared config files only count as test config when the diff touches a pytest section.
MIXED_CONFIG_FILES = {"setup.cfg", "pyproject.toml"}
_PYTEST_SECTION = re.compile(r"\[(tool:pytest|tool\.pytest[^\]]*|pytest)\]")


@dataclass
class FileDiff:
    path: str  # the file's path after the change (before it, for deletions)
    text: str


def _path_of(chunk: str) -> str:
    header = re.match(r"diff --git a/(\S+) b/(\S+)", chunk)
    plus = re.search(r"^\+\+\+ (?:b/)?(\S+)", chunk, re.M)
    minus = re.search(r"^--- (?:a/)?(\S+)", chunk, re.M)
    if plus and plus.group(1) != "/dev/null":
        return plus.group(1)
    if minus and minus.group(1) != "/dev/null":
        return minus.group(1)
    if header:
        return header.group(2)
    return ""


def split_patch(patch: str) -> list[FileDiff]:
    """One FileDiff per file, for git-style diffs and plain `diff -u` output alike."""
    lines = patch.splitlines(keepends=True)
    starts = []
    git_style = any(line.startswith("diff --git ") for line in lines)
    for i, line in enumerate(lines):
        if git_style and line.startswith("diff --git "):
            starts.append(i)
        elif not git_style and line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            starts.append(i)
    chunks = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        text = "".join(lines[start:end])
        chunks.append(FileDiff(_path_of(text), text))
    return chunks


def shadowed_module(path: str) -> str | None:
    """The importable top-level name a repository-root file defines (`x.py`, `x/__init__.py`), else None."""
    parts = PurePosixPath(path).parts
    if len(parts) == 1 and parts[0].endswith(_MODULE_SUFFIXES):
        return parts[0].split(".")[0]
    if len(parts) == 2 and parts[1].split(".")[0] == "__init__" and parts[1].endswith(_MODULE_SUFFIXES):
        return parts[0]
    return None


def shadows_the_runner(path: str, diff_text: str = "") -> bool:
    name = shadowed_module(path)
    if name is None:
        return False
    created = "\nnew file mode" in "\n" + diff_text or "--- /dev/null" in diff_text
    return name in RUNNER_MODULES or (created and name in sys.stdlib_module_names)


def is_test_path(path: str, diff_text: str = "") -> bool:
    if shadows_the_runner(path, diff_text):
        return True
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else ""
    if any(part in TEST_DIRS for part in parts[:-1]):
        return True
    if name in TEST_CONFIG_FILES or (name.startswith("test_") and name.endswith(".py")) or name.endswith("_test.py"):
        return True
    if name in MIXED_CONFIG_FILES:
        return bool(_PYTEST_SECTION.search(diff_text))
    return False


def strip_test_changes(patch: str) -> tuple[str, list[str]]:
    """(patch without test-file diffs, the test files that were dropped)."""
    chunks = split_patch(patch)
    if not chunks:
        # Not recognisably a diff: pass it on unchanged so applying it fails with git's reason.
        return patch, []
    kept, dropped = [], []
    for chunk in chunks:
        if is_test_path(chunk.path, chunk.text):
            dropped.append(chunk.path)
        else:
            kept.append(chunk.text)
    text = "".join(kept)
    if text and not text.endswith("\n"):
        text += "\n"
    return text, dropped


def patch_files(patch: str) -> list[str]:
    return [chunk.path for chunk in split_patch(patch)]
