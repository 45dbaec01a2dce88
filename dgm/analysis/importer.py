"""Import an output directory of the official DGM code (jennyzzt/dgm) into a dgm run store.

Official layout (DGM_outer.py / self_improve_step.py):
  DIR/dgm_metadata.jsonl        concatenated *pretty-printed* JSON objects, one per generation:
                                generation, selfimprove_entries [[parent, entry], ...], children,
                                children_compiled, archive (the archive after that generation)
  DIR/initial/metadata.json     the seed's evaluation (overall_performance)
  DIR/<node>/metadata.json      run_id, parent_commit, entry, problem_statement, overall_performance
                                {accuracy_score, total_resolved_ids, total_unresolved_ids,
                                 total_emptypatch_ids, total_submitted_instances, ...}
  DIR/<node>/model_patch.diff   the child's change relative to its parent

Lineage: with `base_dir` (a checkout of the agent source the run started from) every node's patch is
applied on its parent's code with `git apply` and committed, so `dgm diff` works on real code.
Without it, each node is a "patch-only" commit holding patches/<depth>_<node>.diff for its lineage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from dgm.store import Node, RunStore, StageScore, StoreError, TaskResult


class ImportErrorDGM(StoreError):
    pass


# -- reading the official files ------------------------------------------------------------
def read_concatenated_json(path: Path) -> list[dict]:
    """Objects written back to back (pretty-printed, so not one per line)."""
    text = Path(path).read_text(encoding="utf-8")
    decoder, pos, out = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            line = text.count("\n", 0, exc.pos) + 1
            raise ImportErrorDGM(f"{path}: bad JSON at line {line} (object #{len(out) + 1}): {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise ImportErrorDGM(f"{path}: object #{len(out) + 1} is a {type(obj).__name__}, expected an object")
        out.append(obj)


def _ids(perf: dict, *keys: str) -> list[str]:
    for key in keys:
        if isinstance(perf.get(key), list):
            return [str(x) for x in perf[key]]
    return []


def read_node_metadata(dgm_dir: Path, node_id: str) -> dict | None:
    path = dgm_dir / node_id / "metadata.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ImportErrorDGM(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ImportErrorDGM(f"{path}: expected a JSON object")
    return data


def outcomes(perf: dict) -> dict[str, str]:
    """{task_id: outcome} from overall_performance (accepts the total_* and the short key names)."""
    result = {}
    for t in _ids(perf, "total_submitted_ids", "submitted_ids"):
        result[t] = "error"  # submitted but in no list: its evaluation failed
    for t in _ids(perf, "total_unresolved_ids", "unresolved_ids"):
        result[t] = "unresolved"
    for t in _ids(perf, "total_emptypatch_ids", "empty_patch_ids", "emptypatch_ids"):
        result[t] = "empty_patch"
    for t in _ids(perf, "total_resolved_ids", "resolved_ids"):
        result[t] = "resolved"
    return result


# -- importing -----------------------------------------------------------------------------
def import_official_run(dgm_dir: Path, out_dir: Path, *, base_dir: Path | None = None,
                        subsets: list[list[str]] | None = None, run_id: str | None = None) -> RunStore:
    dgm_dir, out_dir = Path(dgm_dir), Path(out_dir)
    meta_path = dgm_dir / "dgm_metadata.jsonl"
    if not meta_path.is_file():
        raise ImportErrorDGM(f"{dgm_dir} is not an official DGM output dir: {meta_path.name} is missing")
    generations = read_concatenated_json(meta_path)
    for i, g in enumerate(generations):
        missing = [k for k in ("generation", "children", "archive") if k not in g]
        if missing:
            raise ImportErrorDGM(f"{meta_path}: generation object #{i + 1} lacks key(s) {', '.join(missing)}")
    initial = read_node_metadata(dgm_dir, "initial")
    if initial is None:
        raise ImportErrorDGM(f"{dgm_dir / 'initial' / 'metadata.json'} is missing (the root node's evaluation)")

    metas = {"initial": initial}
    for g in generations:
        for child in g["children"]:
            metas[child] = read_node_metadata(dgm_dir, child) or {}
    stage_of_count = _stage_sizes(metas)
    run_id = run_id or dgm_dir.name
    config = f"imported_from: {dgm_dir.resolve()}\nformat: official-dgm\nbase_dir: {base_dir or 'null'}\n"
    store = RunStore.create(out_dir, run_id, config, scripted=False)
    store.events.append("import_started", source=str(dgm_dir.resolve()), generations=len(generations))
    with tempfile.TemporaryDirectory(prefix="dgm-import-") as tmp:
        builder = _CodeBuilder(store, Path(tmp), dgm_dir, base_dir)
        _publish(store, builder, "initial", initial, None, 0, "0:0", None, True, True, stage_of_count, subsets)
        for g in generations:
            gen = int(g["generation"]) + 1  # ours: the initial node is generation 0
            entries = g.get("selfimprove_entries") or []
            store.start_generation(gen, [e[0] for e in entries if isinstance(e, list) and e])
            compiled = set(g.get("children_compiled") or [])
            archive = set(g["archive"])
            for slot, child in enumerate(g["children"]):
                meta = metas[child]
                parent = str(meta.get("parent_commit") or _entry_parent(entries, slot) or "initial")
                _publish(store, builder, child, meta, parent, gen, f"{gen}:{slot}", meta.get("entry"),
                         child in compiled, child in archive, stage_of_count, subsets)
            store.finish_generation(gen)
    store.events.append("import_finished", nodes=len(metas))
    store.set_run_status("finished", "imported")
    return store


def _entry_parent(entries, slot):
    try:
        return entries[slot][0]
    except (IndexError, TypeError):
        return None


def _stage_sizes(metas: dict[str, dict]) -> dict[int, int]:
    """Without subset lists, stages are the distinct numbers of submitted tasks (e.g. 10, 60, 200)."""
    counts = sorted({len(outcomes(m.get("overall_performance") or {})) for m in metas.values()} - {0})
    return {c: i + 1 for i, c in enumerate(counts)}


def _scores(results: dict[str, str], stage_of_count, subsets):
    """Task results and cumulative stage scores."""
    if subsets:
        stage_of = {}
        for i, subset in enumerate(subsets, 1):
            for t in subset:
                stage_of.setdefault(t, i)
        last = len(subsets) + 1
        tasks = [TaskResult(t, stage_of.get(t, last), o, 0.0) for t, o in results.items()]
        stages, seen = [], set()
        for stage in sorted({r.stage for r in tasks}):
            seen |= {r.task_id for r in tasks if r.stage == stage}
            resolved = sum(1 for t in seen if results[t] == "resolved")
            stages.append(StageScore(stage, resolved, len(seen)))
        return tasks, stages
    stage = stage_of_count.get(len(results), 1)
    tasks = [TaskResult(t, stage, o, 0.0) for t, o in results.items()]
    resolved = sum(1 for o in results.values() if o == "resolved")
    return tasks, ([StageScore(stage, resolved, len(results))] if results else [])


def _publish(store, builder, node_id, meta, parent, gen, attempt_id, entry, compiled, admitted, stage_of_count, subsets):
    perf = meta.get("overall_performance") or {}
    results = outcomes(perf)
    tasks, stages = _scores(results, stage_of_count, subsets)
    patch_file = store.run_dir.parent / "__none__"
    if parent is not None:
        patch_file = builder.dgm_dir / node_id / "model_patch.diff"
    has_patch = parent is None or (patch_file.is_file() and patch_file.read_text(errors="replace").strip() != "")
    if not meta:
        status, error = "failed", f"{builder.dgm_dir / node_id / 'metadata.json'} missing"
    elif not has_patch:
        status, error = "no_patch", None
    elif not perf:
        status, error = "failed", "no overall_performance (evaluation failed)"
    else:
        status, error = ("evaluated" if compiled else "not_compiled"), None
    score = perf.get("accuracy_score")
    if score is None and stages:
        score = stages[-1].score
    node = Node(
        node_id=node_id, parent_id=parent, generation=gen, attempt_id=attempt_id, status=status,
        compiled=bool(compiled and has_patch), admitted=bool(admitted), entry=entry,
        score=float(score) if score is not None and perf else None, tasks_evaluated=len(tasks), stages=stages,
        modifier_id=parent, error=error,
        paper_compiled=bool(compiled and has_patch),  # the official run's own children_compiled: the paper's rule
    )
    art = builder.tmp / "art" / node_id
    art.mkdir(parents=True)
    (art / "metadata.official.json").write_text(json.dumps(meta, indent=2))
    if parent is not None and has_patch:
        shutil.copy(patch_file, art / "patch.diff")
    statement = meta.get("problem_statement")
    if isinstance(statement, str) and statement.strip():
        (art / "problem_statement.md").write_text(statement)
        (art / "diagnosis.json").write_text(json.dumps(_diagnosis_from_statement(statement), indent=2))
    agent_dir = builder.code_for(node_id, parent, patch_file if has_patch else None)
    if agent_dir is None and builder.errors.get(node_id):
        node.error = (node.error + "; " if node.error else "") + builder.errors[node_id]
    store.finish_attempt(node, tasks, agent_dir=agent_dir, artifacts_dir=art)
    store.events.append("imported_node", node_id=node_id, parent_id=parent, status=status, score=node.score)


def _diagnosis_from_statement(statement: str) -> dict:
    """The official run keeps only the problem statement; its '# To Implement' part is the proposal."""
    body = statement.split("# To Implement", 1)[-1].strip()
    paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
    return {
        "improvement_proposal": paragraphs[0] if paragraphs else body,
        "implementation_suggestion": paragraphs[0] if paragraphs else body,
        "problem_description": "\n\n".join(paragraphs[1:]),
        "source": "reconstructed from the official metadata.json problem_statement",
    }


class _CodeBuilder:
    """Makes each node's agent directory: real code (base + patches) or a patch-only tree."""

    def __init__(self, store: RunStore, tmp: Path, dgm_dir: Path, base_dir: Path | None):
        self.store, self.tmp, self.dgm_dir, self.base_dir = store, tmp, dgm_dir, base_dir
        self.errors: dict[str, str] = {}
        self.depth: dict[str, int] = {}

    def code_for(self, node_id: str, parent: str | None, patch: Path | None) -> Path | None:
        dest = self.tmp / "code" / node_id
        if parent is None:
            self.depth[node_id] = 0
            if self.base_dir is not None:
                shutil.copytree(self.base_dir, dest, ignore=shutil.ignore_patterns(".git"))
            else:
                dest.mkdir(parents=True)
                (dest / "README.imported.md").write_text("Patch-only lineage imported from an official DGM run.\n")
            return dest
        if patch is None or not self.store.lineage.has(parent):
            if patch is not None:
                self.errors[node_id] = f"parent {parent!r} has no code, so this patch could not be applied"
            return None
        self.store.lineage.export(parent, dest)
        self.depth[node_id] = self.depth.get(parent, 0) + 1
        if self.base_dir is None:
            (dest / "patches").mkdir(exist_ok=True)
            shutil.copy(patch, dest / "patches" / f"{self.depth[node_id]:03d}_{node_id}.diff")
            return dest
        proc = subprocess.run(["git", "apply", "--whitespace=nowarn", str(patch.resolve())], cwd=dest,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            self.errors[node_id] = f"{patch} did not apply on {parent!r}: {proc.stderr.strip()[:300]}"
            return None
        return dest


def load_subsets(paths: list[Path]) -> list[list[str]]:
    out = []
    for p in paths:
        try:
            data = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ImportErrorDGM(f"subset file {p}: {exc}") from exc
        if not isinstance(data, list):
            raise ImportErrorDGM(f"subset file {p}: expected a JSON list of task ids")
        out.append([str(x) for x in data])
    return out
