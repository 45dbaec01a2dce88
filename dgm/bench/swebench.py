"""SWE-bench (Verified) through the official harness: an optional extra that needs Docker.

    bench = load_benchmark("swebench", dataset="verified.jsonl")      # local JSON/JSONL/parquet
    bench = load_benchmark("swebench", dataset="princeton-nlp/SWE-bench_Verified")  # HF, online
    bench.task_ids("small")   # DGM's subsets (small 10, medium 50, big 140), shipped in dgm/bench/data/

Agents run inside the instance's image (docker sandbox, image `sweb.eval.x86_64.<id>`), the
repository at /testbed: `agent_workspace(id)` says so and the evaluator runs the agent there
(dgm.agent_run.run_agent_in_image); the image's `testbed` conda env comes first on PATH so the
agent's shell commands run the project's tests with the project's Python. Grading writes a predictions JSONL in SWE-bench's format and calls the
swebench harness (lazy import); its report is returned unchanged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .base import GradeResult, InImageWorkspace, TaskInfo
from .grading_rules import instance_report

DATA = Path(__file__).parent / "data"
SUBSETS = ("small", "medium", "big")
MODEL_NAME = "dgm"
REPO_PATH = "/testbed"
# SWE-bench images activate this env from .bashrc; agents' commands do not read .bashrc, so say it in PATH.
TESTBED_PATH = "/opt/miniconda3/envs/testbed/bin:/opt/miniconda3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SWEBenchUnavailable(RuntimeError):
    """swebench, Docker or the dataset is missing; the message says how to get it."""


def load_dataset_file(path: Path) -> list[dict]:
    """Rows of a local SWE-bench dataset file (.json list, .jsonl, or .parquet)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SWEBenchUnavailable(f"SWE-bench dataset file not found: {path}")
    if path.suffix == ".parquet":
        try:
            import pandas
        except ImportError:
            raise SWEBenchUnavailable(f"reading {path} needs pandas+pyarrow (pip install -e .[swebench])") from None
        return pandas.read_parquet(path).to_dict("records")
    text = path.read_text()
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON/JSONL ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "instance_id" in r for r in rows):
        raise ValueError(f"{path}: expected a list of objects that each have an instance_id")
    return rows


def dgm_subset(name: str) -> list[str]:
    if name not in SUBSETS:
        raise KeyError(f"unknown SWE-bench subset {name!r}; DGM's are {', '.join(SUBSETS)}")
    return json.loads((DATA / f"swebench_{name}.json").read_text())


def predictions_jsonl(predictions: dict[str, str], model: str = MODEL_NAME) -> str:
    """SWE-bench predictions: one {instance_id, model_name_or_path, model_patch} per line."""
    return "".join(json.dumps({"instance_id": iid, "model_name_or_path": model, "model_patch": patch}) + "\n"
                   for iid, patch in predictions.items())


class SWEBenchBenchmark:
    name = "swebench"

    def __init__(self, dataset: str | Path | None = None, split: str = "test", docker_client=None):
        if dataset is None:
            raise SWEBenchUnavailable("SWE-bench needs a dataset: a local .json/.jsonl/.parquet file "
                                      "(dataset=PATH) or a Hugging Face name when online")
        self.dataset_name = str(dataset)
        self.split = split
        self._docker_client = docker_client
        rows = self._load_rows(dataset)
        self._rows = {r["instance_id"]: r for r in rows}

    def _load_rows(self, dataset) -> list[dict]:
        if Path(str(dataset)).expanduser().exists() or str(dataset).endswith((".json", ".jsonl", ".parquet")):
            return load_dataset_file(Path(dataset))
        try:
            import datasets
        except ImportError:
            raise SWEBenchUnavailable(f"loading {dataset!r} from Hugging Face needs `datasets` "
                                      "(pip install -e .[swebench]) and network access") from None
        return list(datasets.load_dataset(str(dataset), split=self.split))

    # ------------------------------------------------------------ listing

    def subsets(self) -> dict[str, list[str]]:
        """DGM's subsets of SWE-bench Verified, or those a dataset names itself (`dgm_subsets` of each row,
        as `dgm tasks export-swebench` writes them)."""
        own: dict[str, list[str]] = {}
        for iid, row in sorted(self._rows.items()):
            for name in row.get("dgm_subsets") or ():
                own.setdefault(name, []).append(iid)
        return own or {name: dgm_subset(name) for name in SUBSETS}

    def task_ids(self, subset: str | None = None) -> list[str]:
        if subset is None or subset == "all":
            return sorted(self._rows)
        subsets = self.subsets()
        if subset not in subsets:
            raise KeyError(f"unknown subset {subset!r} of dataset {self.dataset_name}; known: {', '.join(subsets)}")
        ids = subsets[subset]
        missing = [i for i in ids if i not in self._rows]
        if missing:
            raise KeyError(f"subset {subset!r}: {len(missing)} instances are not in dataset {self.dataset_name} "
                           f"(first: {missing[0]})")
        return ids

    def row(self, instance_id: str) -> dict:
        try:
            return self._rows[instance_id]
        except KeyError:
            raise KeyError(f"instance {instance_id!r} is not in dataset {self.dataset_name}") from None

    def gold_patch(self, instance_id: str) -> str:
        """The dataset's reference fix (trusted side only: the scripted test model's oracle)."""
        return self.row(instance_id)["patch"]

    def find_by_problem_statement(self, text: str) -> str | None:
        """The instance whose problem statement appears in `text` (for the scripted test model)."""
        return next((iid for iid, row in sorted(self._rows.items()) if row["problem_statement"].strip() in text), None)

    def task_info(self, instance_id: str) -> TaskInfo:
        return TaskInfo(instance_id, self.row(instance_id)["problem_statement"],
                        "The repository is at /testbed in its own environment; run its existing tests with the "
                        "project's usual test runner.")

    def image(self, instance_id: str) -> str:
        return f"sweb.eval.x86_64.{instance_id.lower().replace('__', '_1776_')}:latest"

    def agent_workspace(self, instance_id: str) -> InImageWorkspace:
        """Agents work inside the instance's image, on /testbed (the optional Benchmark capability)."""
        self.row(instance_id)
        return InImageWorkspace(self.image(instance_id), REPO_PATH, {"PATH": TESTBED_PATH})

    # ------------------------------------------------------------ docker-backed parts

    def _require_docker(self):
        from dgm.sandbox.docker import daemon_status

        ok, reason = daemon_status()
        if not ok:
            raise SWEBenchUnavailable(f"SWE-bench needs a running Docker daemon: {reason}")

    def _require_harness(self):
        try:
            from swebench.harness import run_evaluation  # noqa: F401
        except ImportError:
            raise SWEBenchUnavailable("grading SWE-bench needs the swebench package: pip install -e .[swebench]") from None

    def prepare_workspace(self, instance_id: str, dest: Path) -> TaskInfo:
        """Only a check: the workspace of an instance lives in its image (/testbed, see
        agent_workspace); `dest` receives nothing."""
        self.row(instance_id)
        self._require_docker()
        Path(dest).mkdir(parents=True, exist_ok=True)
        return self.task_info(instance_id)

    def grade(self, instance_id: str, model_patch: str, *, backend: str, timeout: float,
              log_dir: Path | None = None) -> GradeResult:
        row = self.row(instance_id)
        started = time.monotonic()
        if not (model_patch or "").strip():
            return GradeResult(instance_id, "empty_patch", instance_report(instance_id, patch=model_patch, applied=False, status=None),
                               reason="empty patch")
        if backend != "docker":
            raise SWEBenchUnavailable(f"SWE-bench grading runs in the instance's Docker image; backend {backend!r} cannot")
        self._require_harness()
        self._require_docker()
        return self._grade_with_harness(row, model_patch, timeout, log_dir, started)

    def _grade_with_harness(self, row, model_patch, timeout, log_dir, started) -> GradeResult:  # pragma: no cover - docker
        import docker
        from swebench.harness.run_evaluation import run_instance
        try:  # the module moved between swebench releases
            from swebench.harness.utils import make_test_spec
        except ImportError:
            from swebench.harness.test_spec.test_spec import make_test_spec

        iid = row["instance_id"]
        spec = make_test_spec(row)
        pred = {"instance_id": iid, "model_name_or_path": MODEL_NAME, "model_patch": model_patch}
        client = self._docker_client or docker.from_env()
        result = run_instance(spec, pred, client=client, run_id=f"dgm-{int(started)}", timeout=int(timeout))
        report = (result or {}).get("report") or instance_report(iid, patch=model_patch, applied=False, status=None)
        resolved = bool(report.get(iid, {}).get("resolved"))
        outcome = "resolved" if resolved else "unresolved" if report.get(iid, {}).get("patch_successfully_applied") else "error"
        out = GradeResult(iid, outcome, report, duration_s=time.monotonic() - started)
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            (Path(log_dir) / "report.json").write_text(json.dumps(report, indent=2) + "\n")
            (Path(log_dir) / "predictions.jsonl").write_text(predictions_jsonl({iid: model_patch}))
        return out
