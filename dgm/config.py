"""The run configuration: YAML -> pydantic models.

Errors name the key path and the bad value (``loop.children_per_generation: must be >= 1 (got 0)``)
and are raised before anything runs. ``--set a.b=c`` overrides are applied to the YAML tree first,
so they are validated exactly like the file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dgm.llm.pricing import PriceTable, UnknownPrice

SELECTION_METHODS = ("score_child_prop", "score_prop", "random", "best", "latest")
HELDOUT_DEFAULT = "heldout"
TIMEOUT_MARGIN_S = 300.0  # covers an agent's last step past its own limit: one LLM call and a tool run


class ConfigError(ValueError):
    pass


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSection(Strict):
    name: str = "run"
    seed: int | None = None  # None: drawn at start and saved in the resolved config
    archive_dir: Path = Path("archive")
    workers: int = Field(2, ge=1, description="parallel attempts within a generation")
    max_concurrency: int = Field(10, ge=1, description="sandboxes running at once, run-wide (attempts x task workers "
                                 "share it); the official code ran 2 attempts x 5 task workers")
    executor: Literal["inprocess", "ray"] = Field("inprocess", description="where sandboxed jobs run (see `ray`)")


class RaySection(Strict):
    """Settings of `run.executor: ray` (pip install -e '.[ray]')."""

    address: str | None = Field(None, description="a running cluster's head, HOST:PORT; none: a local Ray for the run")
    gateway_host: str | None = Field(None, description="address the LLM gateway listens on for workers; "
                                     "default: the driver's address towards ray.address (127.0.0.1 locally)")
    resources: dict[str, float] = Field({}, description="custom Ray resources each job needs, e.g. {dgm_worker: 1}")
    job_cpus: float = Field(1.0, gt=0, description="CPUs each job reserves on its node")
    max_retries: int = Field(3, ge=0, description="re-runs of a job whose worker or node died")
    local_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (no address); default: all")
    object_store_mb: int = Field(200, ge=80, description="object store of a local Ray, in MB")


class LoopSection(Strict):
    generations: int = Field(80, ge=1)
    children_per_generation: int = Field(2, ge=1, description="k: parents selected per generation")
    max_children: int | None = Field(None, ge=1)
    wall_clock_hours: float | None = Field(None, gt=0)
    target_score: float | None = Field(None, gt=0, le=1)


class SelectionSection(Strict):
    method: Literal["score_child_prop", "score_prop", "random", "best", "latest"] = "score_child_prop"
    sharpness: float = Field(10.0, gt=0, description="lambda in sigmoid(lambda * (score - midpoint))")
    midpoint: float = Field(0.5, ge=0, le=1, description="alpha_0")
    exclude_perfect: bool = Field(False, description="paper rule: nodes with score 1.0 are not eligible")


class EntriesSection(Strict):
    variant: Literal["swebench", "polyglot"] = "swebench"
    empty_patch_probability: float = Field(0.25, ge=0, le=1)
    empty_patch_threshold: float = Field(0.1, ge=0, le=1)
    stochasticity_probability: float = Field(0.25, ge=0, le=1)
    context_length_probability: float = Field(0.25, ge=0, le=1)


class DiagnosisSection(Strict):
    max_attempts: int = Field(4, ge=1)
    include_test_patch: bool = Field(False, description="show the diagnosis the hidden tests (their patch, names, "
                                     "results and tracebacks), as the paper did; off: it sees none of them")
    max_log_chars: int = Field(250_000, ge=1000, description="per log in the prompt (the official limit)")
    max_code_chars: int | None = Field(None, ge=1000, description="the agent's code in the prompt; None: all of "
                                       "it (the official code does not cut it)")


class AgentLimits(Strict):
    max_steps: int = Field(30, ge=1)
    max_seconds: float = Field(600, gt=0)
    max_cost_usd: float = Field(2.0, ge=0)


class AgentSection(Strict):
    initial: Path = Path("agents/initial")
    task_limits: AgentLimits = AgentLimits()
    # The paper's 30 minutes for a self-modification (the official code's `timeout 1800`).
    self_modify_limits: AgentLimits = AgentLimits(max_steps=60, max_seconds=1800, max_cost_usd=10.0)
    timeout_margin_s: float = Field(TIMEOUT_MARGIN_S, gt=0, description="how long the harness waits past an "
                                    "agent's own time limit before killing it, so an agent out of time still hands "
                                    "in its patch")
    self_modify_timeout_s: float | None = Field(None, gt=0, description="harness timeout of a self-modification; "
                                                "default: self_modify_limits.max_seconds + timeout_margin_s")
    own_tests_command: str = "python -m pytest -q -x tests"
    own_tests_timeout_s: float = Field(300, gt=0)


def harness_timeout(explicit: float | None, limits: AgentLimits, margin: float = TIMEOUT_MARGIN_S) -> float:
    """The sandbox's kill time for an agent run: the configured one, or the agent's own limit plus a margin."""
    return explicit if explicit is not None else limits.max_seconds + margin


class Stage(Strict):
    tasks: list[str] | str  # a subset name of the benchmark, or explicit task ids
    threshold: float = Field(0.0, ge=0, le=1, description="score on the previous stages needed to enter")
    require_second_best: bool = Field(False, description="also >= the second-best fully evaluated archive score")


class EvaluationSection(Strict):
    benchmark: str = "local"
    benchmark_options: dict[str, Any] = {}
    stages: list[Stage] = [Stage(tasks="small")]
    task_timeout_s: float | None = Field(None, gt=0, description="harness timeout of one task run; default: "
                                         "agent.task_limits.max_seconds + agent.timeout_margin_s")
    grade_timeout_s: float = Field(300, gt=0)
    num_evals: int = Field(1, ge=1, description="repeated evaluations of each task")
    workers: int = Field(5, ge=1, description="tasks of one agent evaluated in parallel (the official code: 5 on "
                         "SWE-bench, up to 50 on Polyglot), within run.max_concurrency")
    initial_results: Path | None = Field(None, description="cached evaluation of the initial agent (JSON)")
    heldout: list[str] | str | None = Field(HELDOUT_DEFAULT, description="the sealed held-out split: a subset name "
                                            "or task ids; the loop never evaluates them, `dgm confirm` does (none: no "
                                            "held-out split; the default is empty on a benchmark without that subset)")
    exclude_unhealthy: bool | Path = Field(False, description="drop tasks `dgm tasks health` flagged flaky or "
                                           "invalid: a health report (JSON), or true for "
                                           "<run.archive_dir>/health/<benchmark>.json; recorded in plan.json")


class AdmissionSection(Strict):
    method: Literal["keep_all", "keep_better"] = "keep_all"
    leeway: float = Field(0.1, ge=0, le=1, description="keep_better: admit if score >= initial - leeway")


class SandboxSection(Strict):
    backend: Literal["bwrap", "docker", "local"] = "bwrap"
    memory_mb: int = Field(4096, ge=64)
    cpu_seconds: int = Field(3600, ge=1)
    file_size_mb: int = Field(512, ge=1)
    processes: int = Field(512, ge=8)
    docker_image: str | None = Field(None, description="docker backend's image; default: this checkout's "
                                     "dgm-agent image; `polyglot`: dgm's image with compilers (dgm sandbox build-image)")


class ModelRoute(Strict):
    provider: Literal["openai", "scripted"]
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="NAME of the host env var holding the key (never the key); "
                                    "unset: the server takes no key (a local llama.cpp, vLLM or Ollama)")
    model: str | None = None
    extra_params: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    retry: dict[str, Any] = {}

    def gateway_entry(self) -> dict[str, Any]:
        """This route as the gateway's `build_upstreams` reads it (unset keys left out)."""
        entry = {k: v for k, v in self.model_dump(mode="json").items() if v not in (None, {})}
        return entry if self.provider == "scripted" else {"api_key_env": None, **entry}

    @model_validator(mode="after")
    def _openai_needs_endpoint(self) -> "ModelRoute":
        if self.provider == "openai":
            missing = [k for k in ("base_url", "model") if not getattr(self, k)]
            if missing:
                raise ValueError(f"provider 'openai' needs {', '.join(missing)}")
        return self


class BudgetSection(Strict):
    run_usd: float | None = Field(None, ge=0)
    node_usd: float | None = Field(None, ge=0)
    attempt_usd: float | None = Field(None, ge=0)


class LLMSection(Strict):
    task: ModelRoute = Field(ModelRoute(provider="scripted"), description="solves benchmark tasks")
    self_modify: ModelRoute = Field(ModelRoute(provider="scripted"), description="runs inside a parent rewriting itself")
    diagnosis: ModelRoute = Field(ModelRoute(provider="scripted"), description="diagnoses a parent's failures")
    cache: Literal["off", "read_write", "replay"] = "read_write"
    cache_dir: Path | None = Field(None, description="default: <run_dir>/llm_cache; `dgm replay` points it at the original run's")
    cache_run: str | None = Field(None, description="run whose cached answers are read (default: this run); "
                                                    "`dgm replay` sets the original run's id")
    budgets: BudgetSection = BudgetSection()
    prices: dict[str, dict[str, float]] = Field({}, description="{model: {input, cached_input, output}} USD per 1M tokens")

    @model_validator(mode="before")
    @classmethod
    def _no_coding_role(cls, data: Any) -> Any:
        if isinstance(data, dict) and "coding" in data:
            raise ValueError("llm.coding is gone: the paper's model roles are llm.task (solves benchmark tasks) and "
                             "llm.self_modify (rewrites agents); rename llm.coding to llm.task and add llm.self_modify")
        return data

    @model_validator(mode="after")
    def _every_model_has_a_price(self) -> "LLMSection":
        table = self.price_table()
        for role, route in self.roles().items():
            if route.provider != "scripted" and table.price(route.model) is None:
                raise ValueError(f"llm.{role}.model: {UnknownPrice(route.model)}")
        return self

    def roles(self) -> dict[str, ModelRoute]:
        return {"task": self.task, "self_modify": self.self_modify, "diagnosis": self.diagnosis}

    def price_table(self) -> PriceTable:
        """The shipped price table with `llm.prices` on top (ValueError names a bad entry)."""
        return PriceTable.load(overrides=self.prices or None)


class Config(Strict):
    run: RunSection = RunSection()
    ablation: Literal["none", "no_selfimprove", "no_darwin", "greedy"] = "none"
    loop: LoopSection = LoopSection()
    selection: SelectionSection = SelectionSection()
    entries: EntriesSection = EntriesSection()
    diagnosis: DiagnosisSection = DiagnosisSection()
    agent: AgentSection = AgentSection()
    evaluation: EvaluationSection = EvaluationSection()
    admission: AdmissionSection = AdmissionSection()
    sandbox: SandboxSection = SandboxSection()
    llm: LLMSection = LLMSection()
    ray: RaySection = RaySection()

    @model_validator(mode="after")
    def _harness_outlasts_the_agent(self) -> "Config":
        """An agent that runs out of time must still be able to stop and hand in its patch."""
        agent = self.agent
        pairs = (("evaluation.task_timeout_s", "agent.task_limits.max_seconds", self.evaluation, "task_timeout_s",
                  agent.task_limits.max_seconds),
                 ("agent.self_modify_timeout_s", "agent.self_modify_limits.max_seconds", agent, "self_modify_timeout_s",
                  agent.self_modify_limits.max_seconds))
        for key, limit_key, section, field, limit in pairs:
            timeout = getattr(section, field)
            if timeout is None:  # resolved here, so the run's saved config shows the value used
                setattr(section, field, limit + agent.timeout_margin_s)
            elif timeout <= limit:
                raise ValueError(f"{key} ({timeout:g}) must exceed {limit_key} ({limit:g}), or an agent that "
                                 f"runs out of time is killed before it hands in its patch")
        return self

    @model_validator(mode="after")
    def _health_report_path(self) -> "Config":
        """`exclude_unhealthy: true` means the report `dgm tasks health` writes by default."""
        if self.evaluation.exclude_unhealthy is True:
            name = self.evaluation.benchmark.replace("/", "_").replace(":", "_")
            self.evaluation.exclude_unhealthy = self.run.archive_dir / "health" / f"{name}.json"
        return self

    @property
    def uses_scripted_model(self) -> bool:
        return any(route.provider == "scripted" for route in self.llm.roles().values())

    @property
    def selection_method(self) -> str:
        """Ablations fix the selection method (paper §5): greedy = best, w/o open-ended = latest."""
        return {"no_darwin": "latest", "greedy": "best"}.get(self.ablation, self.selection.method)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def apply_override(tree: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` (value parsed as YAML) to a nested dict."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY.PATH=VALUE")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {path}: {key!r} is not a section")
        node = child
    node[keys[-1]] = yaml.safe_load(raw)


def _format_error(source: str, err: ValidationError) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        lines.append(f"  {path}: {e['msg']}{got}")
    return "\n".join(lines)


def _merge(base: dict, top: dict) -> dict:
    merged = dict(base)
    for key, value in top.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def read_tree(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The YAML mapping of a config file, with `extends: other.yaml` (relative to it) merged underneath."""
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    parent = tree.pop("extends", None)
    if parent is None:
        return tree
    parent_path = (path.parent / parent).resolve()
    if parent_path in seen:
        raise ConfigError(f"{path}: extends {parent} forms a cycle")
    return _merge(read_tree(parent_path, seen + (parent_path,)), tree)


def load_config(path: Path | str, overrides: list[str] = ()) -> Config:
    path = Path(path)
    tree = read_tree(path)
    for assignment in overrides:
        apply_override(tree, assignment)
    try:
        config = Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_error(str(path), exc)) from None
    if config.run.seed is None:
        config.run.seed = random.SystemRandom().randrange(2**31)
    return config
