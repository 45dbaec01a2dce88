"""`dgm tree/show/diff/log/report` on a synthetic run built through the real store (real SQLite + git)."""

import argparse

import pytest

from dgm.analysis.runview import RunView
from dgm.analysis.synthetic import build_synthetic_run
from dgm.cli import browse, report


def run_cli(argv):
    """Parse with only this part's commands, so unrelated CLI modules cannot break these tests."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    browse.register(sub)
    report.register(sub)
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_synthetic_run(tmp_path_factory.mktemp("runs") / "syn", children=10, seed=3)


def test_tree_marks_best_interval_and_scripted(run_dir, capsys):
    assert run_cli(["tree", str(run_dir)]) == 0
    out = capsys.readouterr().out
    view = RunView.load(run_dir)
    best = view.best()
    assert "scripted model" in out.splitlines()[0]
    assert "★ best" in out and best.node_id in out
    lo, hi = view.interval(best)
    assert f"[{lo:.2f}–{hi:.2f}]" in out
    assert all(n.node_id in out for n in view.nodes)


def test_show_lists_parent_outcomes_and_cost(run_dir, capsys):
    view = RunView.load(run_dir)
    child = next(n for n in view.nodes if n.parent_id and n.tasks_evaluated)
    assert run_cli(["show", str(run_dir), child.node_id]) == 0
    out = capsys.readouterr().out
    assert child.parent_id in out and "cost" in out and "diagnosis" in out
    assert view.results[child.node_id][0].task_id in out


def test_diff_defaults_to_parent_and_compares_two_nodes(run_dir, capsys):
    view = RunView.load(run_dir)
    child = next(n for n in view.nodes if n.parent_id and n.commit_sha)
    assert run_cli(["diff", str(run_dir), child.node_id]) == 0
    captured = capsys.readouterr()
    assert f"+def improvement_{child.node_id}" in captured.out
    assert "scripted model" in captured.err  # banner kept off stdout so the diff stays pipeable
    assert run_cli(["diff", str(run_dir), child.node_id, "initial"]) == 0
    assert "diff --git a/agent/core.py" in capsys.readouterr().out


def test_log_shows_trajectory_and_names_missing_task(run_dir, capsys):
    view = RunView.load(run_dir)
    child = next(n for n in view.nodes if n.parent_id and n.tasks_evaluated)
    assert run_cli(["log", str(run_dir), child.node_id, "self_modify"]) == 0
    assert "exit: submitted" in capsys.readouterr().out
    task = view.results[child.node_id][0].task_id
    assert run_cli(["log", str(run_dir), child.node_id, task]) == 0
    assert f"Fix the issue in {task}" in capsys.readouterr().out
    assert run_cli(["log", str(run_dir), child.node_id, "no-such-task"]) == 2
    err = capsys.readouterr().err
    assert "no-such-task" in err and "available: self_modify" in err


def test_clear_errors_for_missing_run_and_node(run_dir, tmp_path, capsys):
    assert run_cli(["show", str(run_dir), "ghost"]) == 2
    assert "no node 'ghost'" in capsys.readouterr().err
    assert run_cli(["tree", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_run_id_under_archive(run_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "myrun").symlink_to(run_dir)
    monkeypatch.chdir(tmp_path)
    assert run_cli(["tree", "myrun"]) == 0


def test_report_md_and_csv(run_dir, capsys):
    assert run_cli(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "scripted model" in out and "best_score" in out and "compiled_rate" in out
    assert run_cli(["report", str(run_dir), str(run_dir), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("run,model,status,children") and len(lines) == 3


def test_regressions_are_tasks_parent_solved_and_child_failed(run_dir):
    view = RunView.load(run_dir)
    for n in view.nodes:
        if not n.parent_id:
            continue
        parent_ok = {r.task_id for r in view.results.get(n.parent_id, []) if r.outcome == "resolved"}
        mine = {r.task_id: r.outcome for r in view.results.get(n.node_id, [])}
        assert view.regressions(n.node_id) == sorted(t for t in parent_ok if t in mine and mine[t] != "resolved")
