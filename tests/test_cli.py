"""Every command has --help with a runnable example, and the top-level help lists them all."""

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
