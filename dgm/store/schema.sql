-- One run's index. Artifacts live in nodes/<id>/, agent code in agents.git.
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    config_yaml TEXT NOT NULL,
    scripted    INTEGER NOT NULL,        -- 1 when any model was the scripted test double
    status      TEXT NOT NULL,           -- running | finished | stopped | crashed
    stop_reason TEXT,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS generations (
    generation  INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    parents     TEXT NOT NULL            -- JSON list of parent node ids, one per slot
);
-- An attempt is one (generation, slot): idempotency key "gen:slot". Re-run if never finished.
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id  TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    parent_id   TEXT,
    status      TEXT NOT NULL,           -- started | finished | budget_exhausted (paused: resume re-runs it)
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    tries       INTEGER NOT NULL DEFAULT 1,
    phase       TEXT,                    -- what it is doing now: diagnosing | self-modifying | own tests | evaluating
    phase_done  INTEGER,                 -- evaluating: tasks finished ...
    phase_total INTEGER,                 -- ... of the tasks in the stages entered so far
    phase_at    TEXT                     -- when the phase last changed
);
-- A node is an attempted child (or the initial agent). Only nodes with a patch have agent code.
CREATE TABLE IF NOT EXISTS nodes (
    node_id         TEXT PRIMARY KEY,
    parent_id       TEXT,
    generation      INTEGER NOT NULL,
    attempt_id      TEXT NOT NULL UNIQUE,
    entry           TEXT,                -- task id or solve_empty_patches / solve_stochasticity / solve_contextlength
    status          TEXT NOT NULL,       -- evaluated | no_patch | not_compiled | failed | budget_exhausted
    compiled        INTEGER NOT NULL,
    admitted        INTEGER NOT NULL,
    score           REAL,                -- score on the largest completed stage (selection score)
    tasks_evaluated INTEGER NOT NULL DEFAULT 0,
    commit_sha      TEXT,
    modifier_id     TEXT,                -- whose code did the self-modification (parent, or initial for no_selfimprove)
    error           TEXT,
    created_at      TEXT NOT NULL,
    finished_at     TEXT,
    paper_compiled  INTEGER,             -- the official code's "compiled" (see loop.paper_compiled); NULL: not evaluated
    tasks_skipped   INTEGER,             -- task runs adaptive evaluation never started (dgm/adaptive.py)
    approval        TEXT,                -- human gate: pending_approval | approved | rejected; NULL: no gate
    approval_reason TEXT,
    approval_at     TEXT
);
CREATE TABLE IF NOT EXISTS stage_scores (
    node_id   TEXT NOT NULL,
    stage     INTEGER NOT NULL,          -- 1-based
    resolved  INTEGER NOT NULL,
    total     INTEGER NOT NULL,
    score     REAL NOT NULL,
    graded    INTEGER,                   -- adaptive evaluation stopped the stage: task runs counted; NULL: all
    PRIMARY KEY (node_id, stage)
);
CREATE TABLE IF NOT EXISTS task_results (
    node_id     TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    eval_index  INTEGER NOT NULL DEFAULT 0,
    stage       INTEGER NOT NULL,
    outcome     TEXT NOT NULL,           -- resolved | unresolved | empty_patch | error | timeout
    agent_exit  TEXT,                    -- the agent's own exit status (submitted, limits_exceeded, ...)
    duration_s  REAL NOT NULL,
    seq         INTEGER,                 -- evaluation order within the node (the order tasks were started)
    PRIMARY KEY (node_id, task_id, eval_index)
);
CREATE TABLE IF NOT EXISTS llm_calls (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id           TEXT,
    attempt_id        TEXT,
    purpose           TEXT NOT NULL,
    task_id           TEXT,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_usd          REAL NOT NULL,
    cache_hit         INTEGER NOT NULL,
    duration_s        REAL NOT NULL,
    error             TEXT,
    created_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_calls_node ON llm_calls(node_id);
