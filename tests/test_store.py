"""The run store: a run reopened reads back identically; lineage is git history; orphans are cleaned."""

from pathlib import Path

import pytest

from dgm.llm.base import CallContext, UsageRecord
from dgm.store import Node, RunStore, StageScore, StoreError, TaskResult


def _agent(tmp_path: Path, name: str, body: str) -> Path:
    d = tmp_path / name
    (d / "agent").mkdir(parents=True)
    (d / "agent" / "__init__.py").write_text(body)
    return d


def _node(node_id, parent, gen, score, admitted=True):
    return Node(
        node_id=node_id, parent_id=parent, generation=gen, attempt_id=f"{gen}:{node_id}", status="evaluated",
        compiled=True, admitted=admitted, entry="task-1", score=score, tasks_evaluated=10,
        stages=[StageScore(1, int(score * 10), 10)],
    )


def test_reopened_store_reads_back_identically(tmp_path):
    run = tmp_path / "run"
    store = RunStore.create(run, "r1", "seed: 1\n", scripted=True)
    store.begin_attempt("0:initial", 0, 0, None)
    store.finish_attempt(_node("initial", None, 0, 0.3), [TaskResult("t1", 1, "resolved", 1.5, "submitted")],
                         agent_dir=_agent(tmp_path, "a0", "x = 0\n"))
    store.begin_attempt("1:c1", 1, 0, "initial")
    store.finish_attempt(_node("c1", "initial", 1, 0.5), [TaskResult("t1", 1, "unresolved", 2.0)],
                         agent_dir=_agent(tmp_path, "a1", "x = 1\n"))
    store.record_llm_call(UsageRecord(CallContext("r1", "c1", "1:c1", "task", "t1"), "m", 10, 5, 2, 0.25, False, 0.1))
    before = (store.nodes(), store.task_results("c1"), store.llm_totals("purpose"), store.run_info())
    store.close()

    again = RunStore.open(run)
    assert (again.nodes(), again.task_results("c1"), again.llm_totals("purpose"), again.run_info()) == before
    assert again.admitted_children() == {"initial": 1, "c1": 0}
    assert again.spent_usd("c1") == pytest.approx(0.25)


def test_lineage_is_git_history(tmp_path):
    store = RunStore.create(tmp_path / "run", "r1", "{}", scripted=False)
    store.finish_attempt(_node("initial", None, 0, 0.2), agent_dir=_agent(tmp_path, "a0", "x = 0\n"))
    store.finish_attempt(_node("c1", "initial", 1, 0.2), agent_dir=_agent(tmp_path, "a1", "x = 1\n"))
    lineage = store.lineage
    assert lineage.repo.commit(lineage.sha("c1")).parents[0].hexsha == lineage.sha("initial")
    assert "-x = 0\n+x = 1" in lineage.diff("initial", "c1")
    out = lineage.export("c1", tmp_path / "export")
    assert (out / "agent" / "__init__.py").read_text() == "x = 1\n"


def test_same_code_same_parent_gives_same_commit(tmp_path):
    a = RunStore.create(tmp_path / "a", "r", "{}", scripted=False)
    b = RunStore.create(tmp_path / "b", "r", "{}", scripted=False)
    agent = _agent(tmp_path, "a0", "x = 0\n")
    assert a.lineage.commit("initial", agent, None, "m") == b.lineage.commit("initial", agent, None, "m")


def test_cleanup_removes_unfinished_work_and_orphan_node_dirs(tmp_path):
    store = RunStore.create(tmp_path / "run", "r1", "{}", scripted=False)
    work = store.begin_attempt("1:0", 1, 0, "initial")
    (work / "partial.txt").write_text("half done")
    store.node_dir("ghost").mkdir(parents=True)
    assert store.cleanup_orphans() == ["ghost"]
    assert not work.exists()
    assert not store.attempt_finished("1:0")


def test_open_names_the_bad_directory(tmp_path):
    with pytest.raises(StoreError, match="not a dgm run directory"):
        RunStore.open(tmp_path)
    (tmp_path / "run.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="corrupted"):
        RunStore.open(tmp_path)


def test_create_refuses_to_overwrite_a_run(tmp_path):
    RunStore.create(tmp_path / "run", "r1", "{}", scripted=False)
    with pytest.raises(StoreError, match="--resume"):
        RunStore.create(tmp_path / "run", "r1", "{}", scripted=False)


def test_cleanup_drops_tags_of_unpublished_nodes(tmp_path):
    store = RunStore.create(tmp_path / "run", "r1", "{}", scripted=False)
    store.lineage.commit("ghost", _agent(tmp_path, "a0", "x = 0\n"), None, "crashed before the DB commit")
    store.cleanup_orphans()
    assert not store.lineage.has("ghost")


def test_torn_event_line_does_not_swallow_the_next_event(tmp_path):
    store = RunStore.create(tmp_path / "run", "r1", "{}", scripted=False)
    store.events.append("first")
    with (store.run_dir / "events.jsonl").open("a") as f:
        f.write('{"event": "torn", "ts"')  # killed mid-write
    again = RunStore.open(store.run_dir)
    again.events.append("after_resume")
    assert [e["event"] for e in again.events.read()] == ["first", "after_resume"]


def test_archive_order_follows_slots_not_finishing_order(tmp_path):
    store = RunStore.create(tmp_path / "run", "r1", "{}", scripted=False)
    for slot in (11, 2, 0):  # finished in this order, by parallel workers
        node = _node(f"g001s{slot}", None, 1, 0.5)
        node.attempt_id = f"1:{slot}"
        store.finish_attempt(node)
    assert [n.node_id for n in store.nodes()] == ["g001s0", "g001s2", "g001s11"]
