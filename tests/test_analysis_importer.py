"""Importing the official-DGM fixture gives the tree, scores and progress the fixture describes."""

import json

import pytest

from dgm.analysis.importer import ImportErrorDGM, import_official_run, read_concatenated_json
from dgm.analysis.runview import RunView
from dgm.store import RunStore

FIXTURE = __import__("pathlib").Path(__file__).parent / "fixtures" / "official_dgm"
C1, C2, C3, C4 = (f"2025060{d}_{t}_00000{i}" for i, (d, t) in enumerate(
    [(1, "101500"), (1, "101500"), (2, "093000"), (2, "093000")], 1))


def test_concatenated_pretty_json_is_read_object_by_object():
    gens = read_concatenated_json(FIXTURE / "run" / "dgm_metadata.jsonl")
    assert [g["generation"] for g in gens] == [0, 1]
    assert gens[1]["children_compiled"] == [C3, C4]


def test_import_with_base_rebuilds_tree_scores_and_code(tmp_path):
    store = import_official_run(FIXTURE / "run", tmp_path / "imported", base_dir=FIXTURE / "base")
    store.close()
    view = RunView.load(tmp_path / "imported")
    assert not view.scripted
    parents = {n.node_id: n.parent_id for n in view.nodes}
    assert parents == {"initial": None, C1: "initial", C2: "initial", C3: C1, C4: "initial"}
    by = view.by_id
    assert by[C2].status == "not_compiled" and not by[C2].admitted and not by[C2].compiled
    assert [(s.resolved, s.total) for s in by[C3].stages] == [(6, 10)]
    assert view.best().node_id == C3
    progress = [(p.node_id, p.best_so_far, p.archive_mean, p.lineage_score) for p in view.progress()]
    assert progress == [
        ("initial", 0.25, 0.25, 0.25), (C1, 0.5, 0.375, 0.5), (C2, 0.5, 0.375, 0.5),
        (C3, 0.6, pytest.approx(0.45), 0.6), (C4, 0.6, pytest.approx(0.4), 0.6),
    ]
    outcomes = {r.task_id: r.outcome for r in view.results["initial"]}
    assert sorted(outcomes.values()) == ["empty_patch", "resolved", "unresolved", "unresolved"]
    assert view.change_title(C3).startswith("Add a test runner tool")
    reopened = RunStore.open(tmp_path / "imported", read_only=True)
    assert 'TOOLS.append("test_runner")' in reopened.lineage.diff("initial", C3)
    assert "retries = 3" in reopened.lineage.diff("initial", C3)
    reopened.close()


def test_import_without_base_stores_patch_only_lineage(tmp_path):
    store = import_official_run(FIXTURE / "run", tmp_path / "p")
    assert sorted(store.lineage.files(C3)) == ["README.imported.md", f"patches/001_{C1}.diff", f"patches/002_{C3}.diff"]
    store.close()


def test_import_errors_name_the_bad_file(tmp_path):
    with pytest.raises(ImportErrorDGM, match="dgm_metadata.jsonl is missing"):
        import_official_run(tmp_path, tmp_path / "out")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dgm_metadata.jsonl").write_text(json.dumps({"generation": 0}, indent=2) + "\n{ broken")
    with pytest.raises(ImportErrorDGM, match=r"dgm_metadata.jsonl: bad JSON at line \d+ \(object #2\)"):
        import_official_run(bad, tmp_path / "out2")
