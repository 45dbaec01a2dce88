"""Every command has --help with a runnable example, and the top-level help lists them all."""

from pathlib import Path

import pytest

from dgm.cli import build_parser, main

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("run", "status", "tree", "show", "diff", "log", "plot", "report", "ui", "replay", "eval",
                 "tasks", "grade", "sandbox", "import-dgm", "bench"):
        assert name in COMMANDS and name in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "Example: dgm" in capsys.readouterr().out or command == "run"


@pytest.mark.parametrize("bench,named", [("nope", "unknown benchmark 'nope'"),
                                         ("polyglot:small", "needs the path"),
                                         ("local:huge", "huge")])
def test_eval_with_a_bad_benchmark_says_so_and_writes_nothing(bench, named, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default archive dir is relative: nothing may appear here
    agent = Path(__file__).resolve().parents[1] / "agents" / "initial"
    assert main(["eval", str(agent), "--bench", bench]) == 2
    assert named in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_eval_bench_argument_may_carry_a_checkout_path():
    from dgm.cli.evaluate import split_bench_arg

    assert split_bench_arg("local") == ("local", "small")
    assert split_bench_arg("local:medium") == ("local", "medium")
    assert split_bench_arg("polyglot:~/pg") == ("polyglot:~/pg", "small")
    assert split_bench_arg("polyglot:/data/pg:medium") == ("polyglot:/data/pg", "medium")


@pytest.mark.parametrize("argv,named", [
    (["tasks", "list", "nope"], "unknown benchmark 'nope'"),
    (["tasks", "list", "local", "--subset", "huge"], "unknown subset 'huge'"),
    (["tasks", "validate", "local", "--task", "nope"], "unknown task(s): nope"),
    (["replay", "/nonexistent/run"], "no run '/nonexistent/run'"),
])
def test_bad_arguments_get_one_line_errors_not_tracebacks(argv, named, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert named in captured.out + captured.err and "Traceback" not in captured.err
