"""`dgm sandbox ...` commands (real bwrap). The parser is built from this module's `register`
alone, so these tests do not depend on every other CLI module importing cleanly."""

from __future__ import annotations

import argparse

from dgm.cli import sandbox as sandbox_cli
from dgm.sandbox.process import BoundedOutput
from sandbox_helpers import needs_bwrap


@needs_bwrap
def test_exec_prints_output_and_returns_exit_code(tmp_path, capsys):
    (tmp_path / "f.txt").write_text("content")
    code = main(["sandbox", "exec", "--backend", "bwrap", "--workdir", str(tmp_path), "--",
                 "sh", "-c", "cat f.txt; exit 5"])
    assert code == 5 and capsys.readouterr().out == "content"


@needs_bwrap
def test_exec_timeout(capsys):
    code = main(["sandbox", "exec", "--backend", "bwrap", "--timeout", "0.5", "--", "sleep", "10"])
    assert code == 124 and "timed out" in capsys.readouterr().err


def test_exec_bad_workdir_names_it(tmp_path, capsys):
    code = main(["sandbox", "exec", "--workdir", str(tmp_path / "missing"), "--", "true"])
    assert code == 2 and "missing" in capsys.readouterr().err


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dgm")
    sandbox_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_doctor_lists_all_backends(capsys):
    main(["sandbox", "doctor"])
    out = capsys.readouterr().out
    for name in ("bwrap", "docker", "local"):
        assert name in out


def test_cleanup_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DGM_SANDBOX_TMP", str(tmp_path))
    assert main(["sandbox", "cleanup", "--run", "nothing-here"]) == 0
    assert "removed 0 sandbox dirs" in capsys.readouterr().out


def test_bounded_output_keeps_head_and_tail():
    out = BoundedOutput(10)
    for chunk in (b"HEAD", b"-" * 1000, b"TAIL"):
        out.feed(chunk)
    text = out.text()
    assert out.truncated and text.startswith("HEAD") and text.endswith("-TAIL") and "truncated" in text
    small = BoundedOutput(100)
    small.feed(b"abc")
    assert small.text() == "abc" and not small.truncated
