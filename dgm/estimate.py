"""What a run may cost, printed before a run against a paid endpoint starts (and confirmed by the user).

Two numbers, both from the config alone:
- the hard ceiling: `llm.budgets` (run_usd, or node_usd / attempt_usd times the number of nodes),
  which the gateway enforces;
- an estimate from the stage sizes: per child, the self-modification's cost limit, the diagnosis
  calls (from the diagnosis model's price), and the per-task cost limit times the tasks it is
  evaluated on, from "every child stops after stage 1" to "every child runs every stage".
The per-task and self-modification limits are ones the agent applies to itself, so the estimate is
what a run costs if agents keep to them; only the budgets are guaranteed.

A model is paid when its provider is `openai` with a base_url that is not a loopback address (the
scripted model and local servers are free), and the run does not answer from a replayed cache.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlparse

from dgm.config import Config, ModelRoute
from dgm.llm.pricing import PriceTable
from dgm.progress import planned_children

CHARS_PER_TOKEN = 4  # rough size of a prompt in tokens from its characters
DIAGNOSIS_PROMPT_OVERHEAD_TOKENS = 2_000  # instructions and the problem statement around the logs and code
DIAGNOSIS_COMPLETION_TOKENS = 8_000  # assumed answer size (reasoning models think in output tokens)
UNCUT_CODE_CHARS = 100_000  # assumed agent code size when diagnosis.max_code_chars is null (the code is sent whole)


def model_roles(cfg: Config) -> dict[str, tuple[str, ModelRoute]]:
    """{purpose: (config key, route)} for every kind of LLM call a run makes. The one place that knows
    which config key serves which purpose."""
    return {role: (f"llm.{role}", route) for role, route in cfg.llm.roles().items()}


def is_loopback(base_url: str | None) -> bool:
    """By the URL alone (no DNS look-up): localhost names and loopback IP addresses."""
    host = (urlparse(base_url or "").hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def paid_roles(cfg: Config) -> dict[str, tuple[str, ModelRoute]]:
    """The purposes whose calls cost money (empty when the run replays a cache)."""
    if cfg.llm.cache == "replay":
        return {}
    return {purpose: (key, route) for purpose, (key, route) in model_roles(cfg).items()
            if route.provider == "openai" and not is_loopback(route.base_url)}


@dataclass
class CostEstimate:
    endpoints: list[str]            # "llm.task: gpt-4o at https://..."
    children: int                   # children still to make
    children_basis: str             # which config keys set that number
    initial_usd: float              # evaluating the initial agent (0 if cached or done)
    initial_tasks: int
    self_modify_usd: float          # per child
    diagnosis_usd: float            # per child
    per_task_usd: float
    stage_one_tasks: int
    all_stage_tasks: int
    ceiling_usd: float | None
    ceiling_basis: str

    @property
    def low_usd(self) -> float:
        return self.initial_usd + self.children * self._child(self.stage_one_tasks)

    @property
    def high_usd(self) -> float:
        return self.initial_usd + self.children * self._child(self.all_stage_tasks)

    def _child(self, tasks: int) -> float:
        return self.self_modify_usd + self.diagnosis_usd + tasks * self.per_task_usd

    def lines(self) -> list[str]:
        money = lambda x: f"${x:,.2f}"
        out = ["This run calls paid endpoints: " + "; ".join(self.endpoints)]
        out.append("Estimated cost (if agents keep to the per-task and self-modification cost limits):")
        if self.initial_tasks:
            out.append(f"  initial agent: {self.initial_tasks} tasks x {money(self.per_task_usd)} = {money(self.initial_usd)}")
        diag = f"diagnosis ~{money(self.diagnosis_usd)}"
        tasks = (f"{self.stage_one_tasks} tasks (stage 1 only) to {self.all_stage_tasks} tasks (every stage)"
                 if self.all_stage_tasks != self.stage_one_tasks else f"{self.all_stage_tasks} tasks")
        out.append(f"  each child: self-modification <= {money(self.self_modify_usd)}, {diag}, "
                   f"evaluation {tasks} x {money(self.per_task_usd)}")
        total = money(self.low_usd) if self.low_usd == self.high_usd else f"{money(self.low_usd)} to {money(self.high_usd)}"
        out.append(f"  {self.children} children ({self.children_basis}): total {total}")
        if self.ceiling_usd is None:
            out.append("Hard ceiling: none (set llm.budgets.run_usd to cap the run's spend)")
        else:
            out.append(f"Hard ceiling: {money(self.ceiling_usd)} ({self.ceiling_basis}); the run stops there")
            if self.ceiling_usd < self.initial_usd:
                out.append("  at these limits the ceiling may be reached while the initial agent is evaluated")
            elif self.ceiling_usd < self.high_usd:
                fit = [max(0, int((self.ceiling_usd - self.initial_usd) // self._child(n)))
                       for n in (self.all_stage_tasks, self.stage_one_tasks) if self._child(n) > 0]
                span = f"{fit[0]}" if fit[0] == fit[-1] else f"{fit[0]} to {fit[-1]}"
                out.append(f"  at these limits the ceiling allows about {span} children")
        return out


def estimate_cost(cfg: Config, stage_sizes: list[int], *, children_done: int = 0, initial_done: bool = False,
                  prices: PriceTable | None = None) -> CostEstimate | None:
    """None when no model is paid. `stage_sizes`: tasks per evaluation stage (resolved from the benchmark)."""
    paid = paid_roles(cfg)
    if not paid:
        return None
    prices = prices or cfg.llm.price_table()
    repeats = cfg.evaluation.num_evals
    per_task = cfg.agent.task_limits.max_cost_usd if "task" in paid else 0.0
    children = max(0, planned_children(cfg) - children_done)
    initial_tasks = 0 if initial_done or cfg.evaluation.initial_results else sum(stage_sizes) * repeats
    budgets = cfg.llm.budgets
    nodes = children + (0 if initial_done else 1)
    ceilings = [(budgets.run_usd, "llm.budgets.run_usd")]
    for name, per_node in (("node_usd", budgets.node_usd), ("attempt_usd", budgets.attempt_usd)):
        if per_node is not None:
            ceilings.append((per_node * nodes, f"llm.budgets.{name} x {nodes} nodes"))
    ceilings = [(usd, why) for usd, why in ceilings if usd is not None]
    ceiling, basis = min(ceilings) if ceilings else (None, "")
    endpoints = sorted({f"{key}: {route.model} at {route.base_url}" for key, route in paid.values()})
    return CostEstimate(
        endpoints=endpoints, children=children, children_basis=_children_basis(cfg),
        initial_usd=initial_tasks * per_task, initial_tasks=initial_tasks,
        self_modify_usd=cfg.agent.self_modify_limits.max_cost_usd if "self_modify" in paid else 0.0,
        diagnosis_usd=_diagnosis_usd(cfg, paid, prices), per_task_usd=per_task,
        stage_one_tasks=(stage_sizes[0] if stage_sizes else 0) * repeats, all_stage_tasks=sum(stage_sizes) * repeats,
        ceiling_usd=ceiling, ceiling_basis=basis,
    )


def _children_basis(cfg: Config) -> str:
    per_generation = "1 per generation (latest)" if cfg.selection_method == "latest" else \
        f"loop.children_per_generation {cfg.loop.children_per_generation}"
    basis = f"loop.generations {cfg.loop.generations} x {per_generation}"
    return basis + (f", at most loop.max_children {cfg.loop.max_children}" if cfg.loop.max_children else "")


def _diagnosis_usd(cfg: Config, paid: dict, prices: PriceTable) -> float:
    """Up to diagnosis.max_attempts calls, each with the parent's log and code at their configured size."""
    if "diagnosis" not in paid:
        return 0.0
    price = prices.price(paid["diagnosis"][1].model)  # every model has a price: the config checked it
    code_chars = cfg.diagnosis.max_code_chars or UNCUT_CODE_CHARS
    prompt = (cfg.diagnosis.max_log_chars + code_chars) // CHARS_PER_TOKEN
    per_call = price.cost(prompt + DIAGNOSIS_PROMPT_OVERHEAD_TOKENS, DIAGNOSIS_COMPLETION_TOKENS)
    return per_call * cfg.diagnosis.max_attempts
