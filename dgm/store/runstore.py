"""The run store: archive/<run_id>/ with run.db (SQLite, WAL), agents.git, nodes/<id>/, events.jsonl.

Crash safety: an attempt's work happens in work/<attempt>/; only `finish_attempt` publishes it,
moving artifacts to nodes/<id>/ and writing the node, its scores and task results in one SQLite
transaction. A kill -9 at any moment therefore loses at most in-flight attempts, which `resume`
re-runs under the same idempotency key.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import sqlite3
import threading
from importlib import resources
from pathlib import Path
from typing import Iterable

from dgm.llm.base import UsageRecord
from dgm.store.events import EventLog
from dgm.store.lineage import AgentLineage
from dgm.store.records import Node, StageScore, TaskResult

DB_NAME = "run.db"
# Columns added after the first release: (table, column, declaration). A run directory written before
# them gains them when it is opened for writing (resume); read-only readers treat them as unknown.
PHASE_COLUMNS = ("phase", "phase_done", "phase_total", "phase_at")
ADDED_COLUMNS = (
    ("nodes", "paper_compiled", "INTEGER"),
    ("task_results", "seq", "INTEGER"),
    ("attempts", "phase", "TEXT"),
    ("attempts", "phase_done", "INTEGER"),
    ("attempts", "phase_total", "INTEGER"),
    ("attempts", "phase_at", "TEXT"),
    ("runs", "plan_sha256", "TEXT"),  # SHA-256 of plan.json, written once at run start
)


class StoreError(RuntimeError):
    pass


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def crash_point(name: str, key: object) -> None:
    """Test hook for tests/test_resume.py: with DGM_TEST_KILL_AT="<name>:<key>" (e.g. "publish:1:0"),
    the process SIGKILLs itself here, so a crash lands exactly at a named point of the loop.
    Points: diagnosis:<attempt>, publish:<attempt>, generation_done:<generation>."""
    if os.environ.get("DGM_TEST_KILL_AT") == f"{name}:{key}":
        os.kill(os.getpid(), signal.SIGKILL)


class RunStore:
    def __init__(self, run_dir: Path, *, read_only: bool = False):
        self.run_dir = Path(run_dir).resolve()
        self._lock = threading.RLock()
        db_path = self.run_dir / DB_NAME
        if read_only:
            self.db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.db = sqlite3.connect(db_path, check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.row_factory = sqlite3.Row
        git_dir = self.run_dir / "agents.git"
        self.lineage = AgentLineage(git_dir) if (not read_only or git_dir.exists()) else None
        self.events = EventLog(self.run_dir / "events.jsonl", writable=not read_only)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, run_id: str, config_yaml: str, scripted: bool) -> "RunStore":
        run_dir = Path(run_dir)
        if (run_dir / DB_NAME).exists():
            raise StoreError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
        (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config_yaml)
        store = cls(run_dir)
        with store._lock, store.db:
            store.db.executescript(resources.files("dgm.store").joinpath("schema.sql").read_text())
            store.db.execute(
                "INSERT INTO runs (run_id, created_at, config_yaml, scripted, status, stop_reason, finished_at)"
                " VALUES (?,?,?,?,?,?,?)", (run_id, now(), config_yaml, int(scripted), "running", None, None)
            )
        store._add_missing_columns()
        return store

    @classmethod
    def open(cls, run_dir: Path, *, read_only: bool = False) -> "RunStore":
        run_dir = Path(run_dir)
        if not (run_dir / DB_NAME).is_file():
            raise StoreError(f"{run_dir} is not a dgm run directory (no {DB_NAME})")
        try:
            store = cls(run_dir, read_only=read_only)
            store.db.execute("SELECT run_id FROM runs").fetchone()
            if not read_only:
                store._add_missing_columns()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{run_dir / DB_NAME} is corrupted or not a dgm store: {exc}") from exc
        return store

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def _add_missing_columns(self) -> None:
        with self._lock, self.db:
            for table, column, declaration in ADDED_COLUMNS:
                if column not in self._columns(table):
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def close(self) -> None:
        self.db.close()

    # -- run -----------------------------------------------------------------------------
    def run_info(self) -> dict:
        return dict(self.db.execute("SELECT * FROM runs").fetchone())

    def set_run_status(self, status: str, reason: str | None = None) -> None:
        finished = now() if status != "running" else None
        with self._lock, self.db:
            self.db.execute("UPDATE runs SET status=?, stop_reason=?, finished_at=?", (status, reason, finished))

    def set_plan_hash(self, sha256: str) -> None:
        """Seal the pre-registered plan: its hash is written once and never replaced."""
        with self._lock, self.db:
            row = self.db.execute("SELECT plan_sha256 FROM runs").fetchone()
            if row["plan_sha256"] not in (None, sha256):
                raise StoreError(f"{self.run_dir}: the run's plan is already sealed with another hash")
            self.db.execute("UPDATE runs SET plan_sha256=?", (sha256,))

    def plan_hash(self) -> str | None:
        """The sealed plan's SHA-256 (None for runs made before plans, or not sealed yet)."""
        if "plan_sha256" not in self._columns("runs"):
            return None
        return self.db.execute("SELECT plan_sha256 FROM runs").fetchone()["plan_sha256"]

    # -- generations and attempts --------------------------------------------------------
    def start_generation(self, generation: int, parents: list[str]) -> None:
        with self._lock, self.db:
            self.db.execute(
                "INSERT OR IGNORE INTO generations (generation, started_at, parents) VALUES (?,?,?)",
                (generation, now(), json.dumps(parents)),
            )

    def generation_parents(self, generation: int) -> list[str] | None:
        row = self.db.execute("SELECT parents FROM generations WHERE generation=?", (generation,)).fetchone()
        return json.loads(row["parents"]) if row else None

    def finish_generation(self, generation: int) -> None:
        with self._lock, self.db:
            self.db.execute("UPDATE generations SET finished_at=? WHERE generation=?", (now(), generation))

    def generations(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM generations ORDER BY generation")]

    def attempt_finished(self, attempt_id: str) -> bool:
        row = self.db.execute("SELECT status FROM attempts WHERE attempt_id=?", (attempt_id,)).fetchone()
        return bool(row) and row["status"] == "finished"

    def begin_attempt(self, attempt_id: str, generation: int, slot: int, parent_id: str | None) -> Path:
        """Register (or re-register after a crash) an attempt; returns its clean scratch dir."""
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO attempts (attempt_id, generation, slot, parent_id, status, started_at, phase, phase_at)"
                " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(attempt_id) DO UPDATE SET tries = tries + 1,"
                " started_at = excluded.started_at, status = excluded.status, phase = excluded.phase,"
                " phase_done = NULL, phase_total = NULL, phase_at = excluded.phase_at",
                (attempt_id, generation, slot, parent_id, "started", now(), "starting", now()),
            )
        work = self.work_dir(attempt_id)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return work

    def set_phase(self, attempt_id: str, phase: str, done: int | None = None, total: int | None = None) -> None:
        """Record what an in-flight attempt is doing now (read live by the terminal view and the dashboard)."""
        with self._lock, self.db:
            self.db.execute("UPDATE attempts SET phase=?, phase_done=?, phase_total=?, phase_at=? WHERE attempt_id=?",
                            (phase, done, total, now(), attempt_id))

    def count_phase_step(self, attempt_id: str) -> None:
        """One more unit of the current phase is done (e.g. one evaluated task)."""
        with self._lock, self.db:
            self.db.execute("UPDATE attempts SET phase_done = COALESCE(phase_done, 0) + 1, phase_at=?"
                            " WHERE attempt_id=?", (now(), attempt_id))

    def in_flight(self) -> list[dict]:
        """Attempts started but not yet published, with their current phase (None in run dirs made before phases)."""
        have = self._columns("attempts")
        phase = ", ".join(name if name in have else f"NULL AS {name}" for name in PHASE_COLUMNS)
        rows = self.db.execute(
            f"SELECT attempt_id, generation, slot, parent_id, started_at, tries, {phase} FROM attempts"
            " WHERE status != 'finished' ORDER BY generation, slot"
        )
        return [dict(r) for r in rows]

    def pause_attempt(self, attempt_id: str, status: str) -> None:
        """Mark an unfinished attempt as stopped for a reason (e.g. budget_exhausted); resume re-runs it."""
        with self._lock, self.db:
            self.db.execute("UPDATE attempts SET status=? WHERE attempt_id=? AND status != 'finished'",
                            (status, attempt_id))

    def paused_attempts(self) -> list[dict]:
        """Attempts that stopped unfinished for a recorded reason (not crashes: those stay 'started')."""
        rows = self.db.execute("SELECT attempt_id, generation, slot, parent_id, status, tries FROM attempts"
                               " WHERE status NOT IN ('started', 'finished') ORDER BY generation, slot")
        return [dict(r) for r in rows]

    def work_dir(self, attempt_id: str) -> Path:
        return self.run_dir / "work" / attempt_id.replace(":", "_")

    def node_dir(self, node_id: str) -> Path:
        return self.run_dir / "nodes" / node_id

    def finish_attempt(
        self,
        node: Node,
        task_results: Iterable[TaskResult] = (),
        agent_dir: Path | None = None,
        artifacts_dir: Path | None = None,
    ) -> Node:
        """Publish an attempt's node: git commit, artifacts, then one DB transaction."""
        if agent_dir is not None:
            node.commit_sha = self.lineage.commit(node.node_id, agent_dir, node.parent_id, f"node {node.node_id}")
        final_dir = self.node_dir(node.node_id)
        shutil.rmtree(final_dir, ignore_errors=True)
        if artifacts_dir is not None and artifacts_dir.exists():
            artifacts_dir.rename(final_dir)
        else:
            final_dir.mkdir(parents=True)
        crash_point("publish", node.attempt_id)  # worst moment: code and files published, no DB row yet
        node.finished_at = now()
        with self._lock, self.db:
            self._insert_node(node)
            # `seq` keeps the evaluation order the results come in (rules like "two tasks in a row" read it).
            self.db.executemany(
                "INSERT OR REPLACE INTO task_results (node_id, task_id, eval_index, stage, outcome, agent_exit,"
                " duration_s, seq) VALUES (?,?,?,?,?,?,?,?)",
                [(node.node_id, r.task_id, r.eval_index, r.stage, r.outcome, r.agent_exit, r.duration_s, seq)
                 for seq, r in enumerate(task_results)],
            )
            self.db.execute(
                "UPDATE attempts SET status='finished', finished_at=? WHERE attempt_id=?", (node.finished_at, node.attempt_id)
            )
        shutil.rmtree(self.work_dir(node.attempt_id), ignore_errors=True)
        return node

    def _insert_node(self, node: Node) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO nodes (node_id, parent_id, generation, attempt_id, entry, status, compiled,"
            " admitted, score, tasks_evaluated, commit_sha, modifier_id, error, created_at, finished_at,"
            " paper_compiled) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                node.node_id, node.parent_id, node.generation, node.attempt_id, node.entry, node.status,
                int(node.compiled), int(node.admitted), node.score, node.tasks_evaluated, node.commit_sha,
                node.modifier_id, node.error, node.created_at or now(), node.finished_at,
                None if node.paper_compiled is None else int(node.paper_compiled),
            ),
        )
        self.db.execute("DELETE FROM stage_scores WHERE node_id=?", (node.node_id,))
        self.db.executemany(
            "INSERT INTO stage_scores VALUES (?,?,?,?,?)",
            [(node.node_id, s.stage, s.resolved, s.total, s.score) for s in node.stages],
        )

    def cleanup_orphans(self) -> list[str]:
        """After a crash: drop scratch dirs and node dirs that no finished node owns."""
        shutil.rmtree(self.run_dir / "work", ignore_errors=True)
        known = {n.node_id for n in self.nodes()}
        for tag in list(self.lineage.repo.tags):  # a crash between git commit and DB commit leaves a tag
            if tag.name.startswith("node/") and tag.name[len("node/"):] not in known:
                self.lineage.repo.delete_tag(tag)
        removed = []
        for path in (self.run_dir / "nodes").iterdir():
            if path.name not in known:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
        return removed

    # -- reading -------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        # Archive order must not depend on which parallel attempt finished first (selection reads it).
        rows = self.db.execute(
            "SELECT * FROM nodes ORDER BY generation,"
            " CAST(substr(attempt_id, instr(attempt_id, ':') + 1) AS INTEGER), node_id"
        ).fetchall()
        stages = self._all_stages()
        return [self._node_from_row(r, stages.get(r["node_id"], [])) for r in rows]

    def node(self, node_id: str) -> Node:
        row = self.db.execute("SELECT * FROM nodes WHERE node_id=?", (node_id,)).fetchone()
        if row is None:
            raise StoreError(f"no node {node_id!r} in {self.run_dir}")
        return self._node_from_row(row, self._all_stages().get(node_id, []))

    def archive(self) -> list[Node]:
        """Admitted nodes: the ones eligible as parents."""
        return [n for n in self.nodes() if n.admitted]

    def admitted_children(self) -> dict[str, int]:
        counts = {n.node_id: 0 for n in self.archive()}
        for n in self.archive():
            if n.parent_id in counts:
                counts[n.parent_id] += 1
        return counts

    def task_results(self, node_id: str) -> list[TaskResult]:
        """A node's results in evaluation order (runs written before `seq` existed stored them in that order)."""
        order = "seq, rowid" if "seq" in self._columns("task_results") else "rowid"
        rows = self.db.execute(f"SELECT * FROM task_results WHERE node_id=? ORDER BY {order}", (node_id,)).fetchall()
        return [TaskResult(r["task_id"], r["stage"], r["outcome"], r["duration_s"], r["agent_exit"], r["eval_index"]) for r in rows]

    def _all_stages(self) -> dict[str, list[StageScore]]:
        out: dict[str, list[StageScore]] = {}
        for r in self.db.execute("SELECT * FROM stage_scores ORDER BY node_id, stage"):
            out.setdefault(r["node_id"], []).append(StageScore(r["stage"], r["resolved"], r["total"]))
        return out

    @staticmethod
    def _node_from_row(r: sqlite3.Row, stages: list[StageScore]) -> Node:
        return Node(
            node_id=r["node_id"], parent_id=r["parent_id"], generation=r["generation"], attempt_id=r["attempt_id"],
            status=r["status"], compiled=bool(r["compiled"]), admitted=bool(r["admitted"]), entry=r["entry"],
            score=r["score"], tasks_evaluated=r["tasks_evaluated"], commit_sha=r["commit_sha"],
            modifier_id=r["modifier_id"], error=r["error"], created_at=r["created_at"], finished_at=r["finished_at"],
            stages=stages, paper_compiled=_optional_bool(r, "paper_compiled"),
        )

    # -- LLM metering (the gateway's UsageSink) ------------------------------------------
    def record_llm_call(self, usage: UsageRecord) -> None:
        c = usage.context
        with self._lock, self.db:
            self.db.execute(
                "INSERT INTO llm_calls (node_id, attempt_id, purpose, task_id, model, prompt_tokens, completion_tokens,"
                " cached_tokens, cost_usd, cache_hit, duration_s, error, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    c.node_id, c.attempt_id, c.purpose, c.task_id, usage.model, usage.prompt_tokens,
                    usage.completion_tokens, usage.cached_tokens, usage.cost_usd, int(usage.cache_hit),
                    usage.duration_s, usage.error, now(),
                ),
            )

    def llm_totals(self, group_by: str | None = None) -> list[dict]:
        """Calls, tokens and $ in total, or grouped by 'purpose' / 'node_id' / 'model'."""
        if group_by not in (None, "purpose", "node_id", "model"):
            raise ValueError(f"cannot group LLM calls by {group_by!r}")
        key = f"{group_by} AS key," if group_by else ""
        group = f"GROUP BY {group_by} ORDER BY {group_by}" if group_by else ""
        sql = (
            f"SELECT {key} COUNT(*) AS calls, COALESCE(SUM(prompt_tokens),0) AS prompt_tokens,"
            " COALESCE(SUM(completion_tokens),0) AS completion_tokens, COALESCE(SUM(cached_tokens),0) AS cached_tokens,"
            " COALESCE(SUM(cost_usd),0) AS cost_usd, COALESCE(SUM(cache_hit),0) AS cache_hits,"
            " COALESCE(SUM(error LIKE 'budget_exceeded%'),0) AS budget_refusals"
            f" FROM llm_calls {group}"
        )
        return [dict(r) for r in self.db.execute(sql)]

    def llm_models(self) -> dict[str, list[str]]:
        """{purpose (model role): the real models its calls went to}."""
        models: dict[str, list[str]] = {}
        for r in self.db.execute("SELECT DISTINCT purpose, model FROM llm_calls ORDER BY purpose, model"):
            models.setdefault(r["purpose"], []).append(r["model"])
        return models

    def spent_usd(self, node_id: str | None = None) -> float:
        if node_id is None:
            row = self.db.execute("SELECT COALESCE(SUM(cost_usd),0) FROM llm_calls").fetchone()
        else:
            row = self.db.execute("SELECT COALESCE(SUM(cost_usd),0) FROM llm_calls WHERE node_id=?", (node_id,)).fetchone()
        return float(row[0])


def _optional_bool(row: sqlite3.Row, column: str) -> bool | None:
    """A nullable flag; None also when the run predates the column."""
    value = row[column] if column in row.keys() else None
    return None if value is None else bool(value)
