"""Watching a run: the phase feed of in-flight attempts and the terminal's live view of it.

The loop and the evaluator report phase boundaries through a `Progress` (one call per boundary:
diagnosing, self-modifying, own tests, evaluating n/N). The run's implementation, `StoreProgress`,
writes them to the attempts table of the run store, so everything that watches a run reads one
place: the terminal view below (in the run's own process) and `dgm ui` (another process). Readers
use their own read-only SQLite connection; in WAL mode they never block the run's writes.

`live_view` shows, while a run goes, each in-flight attempt and its phase, the spend so far and its
rate, and an estimate of the time left. It is drawn only on a terminal: with stdout redirected the
run prints just its plain per-node lines.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from dgm.config import Config
from dgm.store import RunStore
from dgm.store.records import PENDING_APPROVAL

log = logging.getLogger(__name__)

class Progress(Protocol):
    def phase(self, attempt_id: str, name: str, done: int | None = None, total: int | None = None) -> None:
        """The attempt entered phase `name` (with `done` of `total` units if the phase counts)."""

    def step(self, attempt_id: str) -> None:
        """One more unit of the attempt's current phase is done (e.g. one evaluated task)."""


class NoProgress:
    """For code run outside a watched run (tests, `dgm eval`)."""

    def phase(self, attempt_id: str, name: str, done: int | None = None, total: int | None = None) -> None:
        pass

    def step(self, attempt_id: str) -> None:
        pass


class StoreProgress:
    """Phases go to the run store. A failed write is logged, never raised: watching must not stop a run."""

    def __init__(self, store: RunStore):
        self.store = store

    def phase(self, attempt_id: str, name: str, done: int | None = None, total: int | None = None) -> None:
        self._safely(self.store.set_phase, attempt_id, name, done, total)

    def step(self, attempt_id: str) -> None:
        self._safely(self.store.count_phase_step, attempt_id)

    @staticmethod
    def _safely(write, *args) -> None:
        try:
            write(*args)
        except sqlite3.Error as exc:
            log.warning("could not record an attempt's phase: %s", exc)


# -- what the live view shows ----------------------------------------------------------------
def planned_children(cfg: Config) -> int:
    """How many children loop.generations and loop.max_children allow (other stop rules may end a run sooner)."""
    per_generation = 1 if cfg.selection_method == "latest" else cfg.loop.children_per_generation
    planned = cfg.loop.generations * per_generation
    return min(planned, cfg.loop.max_children) if cfg.loop.max_children is not None else planned


@dataclass
class Attempt:
    node_id: str
    parent_id: str | None
    phase: str
    done: int | None
    total: int | None
    phase_seconds: float | None


@dataclass
class Snapshot:
    in_flight: list[Attempt]
    children: int                # children finished so far (the whole run)
    planned: int
    spent_usd: float
    run_budget_usd: float | None
    session_hours: float
    session_spent_usd: float
    seconds_left: float | None   # None until a child finished in this session
    basis: str                   # what the time-left estimate rests on, in words
    generations: int = 0
    generations_planned: int = 0
    pending_approval: tuple[str, ...] = ()  # children the human gate holds (dgm/approval.py)

    @property
    def usd_per_hour(self) -> float | None:
        return self.session_spent_usd / self.session_hours if self.session_hours > 1 / 360 else None


def _age_seconds(stamp: str | None, now: _dt.datetime) -> float | None:
    if not stamp:
        return None
    try:
        return max(0.0, (now - _dt.datetime.fromisoformat(stamp)).total_seconds())
    except ValueError:
        return None


def attempt_node(row: dict) -> str:
    """The node id an in-flight attempt (a row of the attempts table) will publish."""
    from dgm.loop import INITIAL, node_id_for  # the loop names nodes; imported late (the loop imports this module)

    return INITIAL if row["generation"] == 0 else node_id_for(row["generation"], row["slot"])


class Tracker:
    """Turns successive store readings into snapshots. The time-left estimate uses children finished in
    this session only (a resumed run's earlier pace may have been on another machine), measured from
    when the initial agent was in the archive (its evaluation is not a child's work)."""

    def __init__(self, cfg: Config, clock=time.monotonic):
        self.cfg = cfg
        self.clock = clock
        self.started = clock()
        self.spent_at_start: float | None = None
        self.children_origin: tuple[float, int] | None = None  # (time, children) when children started coming

    def snapshot(self, store: RunStore) -> Snapshot:
        now_wall = _dt.datetime.now(_dt.timezone.utc)
        now = self.clock()
        nodes = store.nodes()
        children = sum(1 for n in nodes if n.parent_id is not None)
        spent = store.spent_usd()
        if self.spent_at_start is None:
            self.spent_at_start = spent
        if self.children_origin is None and any(n.parent_id is None for n in nodes):
            self.children_origin = (now, children)
        planned = planned_children(self.cfg)
        left, basis = self._time_left(now, children, planned, spent)
        in_flight = [
            Attempt(attempt_node(r), r["parent_id"], r["phase"] or "starting", r["phase_done"], r["phase_total"],
                    _age_seconds(r["phase_at"] or r["started_at"], now_wall))
            for r in store.in_flight()
        ]
        return Snapshot(
            in_flight=in_flight, children=children, planned=planned, spent_usd=spent,
            run_budget_usd=self.cfg.llm.budgets.run_usd, session_hours=(now - self.started) / 3600,
            session_spent_usd=spent - self.spent_at_start, seconds_left=left, basis=basis,
            generations=sum(1 for g in store.generations() if g["finished_at"]),
            generations_planned=self.cfg.loop.generations,
            pending_approval=tuple(n.node_id for n in nodes if n.approval == PENDING_APPROVAL),
        )

    def _time_left(self, now: float, children: int, planned: int, spent: float) -> tuple[float | None, str]:
        remaining = max(0, planned - children)
        if self.children_origin is None:
            return None, "estimate once the initial agent is evaluated and a child has finished"
        since, base = self.children_origin
        finished_here = children - base
        if finished_here <= 0:
            return None, "estimate once a child has finished"
        per_child = (now - since) / finished_here
        left = remaining * per_child
        basis = (f"{remaining} of {planned} children to go at {_duration(per_child)} each, from {finished_here} "
                 f"finished this session; other stop rules may end the run sooner")
        wall, budget = self.cfg.loop.wall_clock_hours, self.cfg.llm.budgets.run_usd
        wall_left = None if wall is None else max(0.0, wall * 3600 - (now - self.started))
        if wall_left is not None and wall_left < left:
            left, basis = wall_left, f"loop.wall_clock_hours ({wall} h) ends the run first"
        usd_per_second = (spent - self.spent_at_start) / (now - self.started) if now > self.started else 0.0
        if budget is not None and usd_per_second > 0 and (budget - spent) / usd_per_second < left:
            left = max(0.0, budget - spent) / usd_per_second
            basis = f"llm.budgets.run_usd (${budget:.2f}) runs out first at this session's ${usd_per_second * 3600:.2f}/h"
        return left, basis


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def render(snap: Snapshot) -> Group:
    table = Table("attempt", "parent", "phase", "for", box=None, pad_edge=False, header_style="bold")
    for a in snap.in_flight:
        phase = a.phase + (f" {a.done or 0}/{a.total}" if a.total else "")
        table.add_row(a.node_id, a.parent_id or "-", phase, _duration(a.phase_seconds) if a.phase_seconds is not None else "")
    rate = snap.usd_per_hour
    spend = f"${snap.spent_usd:.2f} spent"
    if snap.run_budget_usd is not None:
        spend += f" of ${snap.run_budget_usd:.2f} budget"
    spend += f" · ${rate:.2f}/h" if rate is not None else ""
    left = f"~{_duration(snap.seconds_left)} left: " if snap.seconds_left is not None else "time left: "
    lines = [
        Text(f"children {snap.children}/{snap.planned} · generations {snap.generations}/{snap.generations_planned}"
             f" · {spend}", style="bold"),
        Text(left + snap.basis, style="dim"),
    ]
    if snap.pending_approval:
        lines.append(Text(f"waiting for approval: {', '.join(snap.pending_approval)} "
                          "(dgm approve RUN NODE, or the dashboard)", style="yellow"))
    return Group(*lines, table if snap.in_flight else Text("no attempt in flight", style="dim"))


@contextmanager
def live_view(console: Console, run_dir: Path, cfg: Config, refresh_seconds: float = 1.0) -> Iterator[None]:
    """Draw the live view under the run's printed lines while the block runs; nothing when not a terminal."""
    if not console.is_terminal:
        yield
        return
    from rich.live import Live

    reader = RunStore.open(run_dir, read_only=True)
    tracker = Tracker(cfg)
    lock = threading.Lock()
    cached: list = [0.0, Text("")]

    def current():
        with lock:  # rich refreshes from its own thread and from console.print
            if time.monotonic() - cached[0] >= refresh_seconds:
                try:
                    cached[1] = render(tracker.snapshot(reader))
                except sqlite3.Error as exc:  # e.g. the run is mid-checkpoint; show the last good view
                    log.debug("live view: %s", exc)
                cached[0] = time.monotonic()
            return cached[1]

    try:
        with Live(console=console, get_renderable=current, refresh_per_second=1 / refresh_seconds, transient=True):
            yield
    finally:
        reader.close()
