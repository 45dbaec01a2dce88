"""SWE-bench (Verified) through the installed swebench harness (5.x): an optional extra that needs Docker.

    bench = load_benchmark("swebench", dataset="verified.jsonl")      # local JSON/JSONL/parquet
    bench = load_benchmark("swebench", dataset="SWE-bench/SWE-bench_Verified")  # HF, online
    bench.task_ids("small")   # DGM's subsets (small 10, medium 50, big 140), shipped in dgm/bench/data/

Agents run inside the instance's image (docker sandbox; the image the dataset row names, which is the
one the harness grades in), the repository at /testbed: `agent_workspace(id)` says so and the evaluator
runs the agent there (dgm.agent_run.run_agent_in_image); the image's `testbed` conda env comes first on
PATH so the agent's shell commands run the project's tests with the project's Python.

Grading drops the patch's test-file diffs, builds the harness's TestSpec with swebench's make_test_spec,
and calls swebench's run_instance under a fresh run id; the report it returns is kept unchanged and its
logs (test_output.txt, run_instance.log, report.json...) are copied to the task's log dir.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from .base import GradeResult, InImageWorkspace, TaskInfo
from .grading_rules import instance_report
from .patches import strip_test_changes

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

    def test_patch(self, instance_id: str) -> str:
        """The hidden tests (shown to the diagnosis only with diagnosis.include_test_patch, as in the paper)."""
        return self.row(instance_id)["test_patch"]

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
        """The instance's image, as the harness names it: the dataset row's `image` (what swebench 5's
        make_test_spec puts in the TestSpec it runs)."""
        image = self.row(instance_id).get("image")
        if not image:
            raise SWEBenchUnavailable(f"dataset {self.dataset_name}: instance {instance_id} has no 'image'; swebench 5 "
                                      "datasets name each instance's image (SWE-bench/SWE-bench_Verified has them)")
        return image

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

    def prepare_workspace(self, instance_id: str, dest: Path) -> TaskInfo:
        """Only a check: the workspace of an instance lives in its image (/testbed, see
        agent_workspace); `dest` receives nothing."""
        self.row(instance_id)
        self._require_docker()
        Path(dest).mkdir(parents=True, exist_ok=True)
        return self.task_info(instance_id)

    def grade(self, instance_id: str, model_patch: str, *, backend: str, timeout: float,
              log_dir: Path | None = None) -> GradeResult:
        """Grade with the installed harness's run_instance, after dropping the patch's test-file diffs (as
        the official DGM does: an agent's edits to tests are not part of its fix)."""
        row = self.row(instance_id)
        started = time.monotonic()
        patch, stripped = strip_test_changes(model_patch or "")
        if not patch.strip():
            reason = "the patch only changes test files" if stripped else "empty patch"
            return GradeResult(instance_id, "empty_patch", instance_report(instance_id, patch=model_patch, applied=False,
                                                                           status=None),
                               stripped_files=stripped, reason=reason)
        if backend != "docker":
            raise SWEBenchUnavailable(f"SWE-bench grading runs in the instance's Docker image; backend {backend!r} cannot")
        run_instance, make_test_spec = harness()
        spec = harness_test_spec(row, make_test_spec)
        if self._docker_client is None:
            self._require_docker()
        client = self._docker_client or docker_client()
        result = grade_with_harness(run_instance, spec, patch, client, timeout, log_dir)
        result.stripped_files, result.duration_s = stripped, time.monotonic() - started
        return result


# ---------------------------------------------------------------- the installed harness (swebench 5.x)

SUPPORTED_HARNESS = "5"  # the swebench major version whose run_instance/make_test_spec are called below
TEST_SPEC_FIELDS = ("instance_id", "image", "repo", "version", "FAIL_TO_PASS", "PASS_TO_PASS", "log_parser",
                    "eval_type", "eval_script")  # the dataset fields swebench 5's make_test_spec reads
# run_instance writes under RUN_EVALUATION_LOG_DIR, a path relative to the working directory; dgm points
# it here instead (process-wide, the same for every thread) and copies each instance's logs to its log_dir.
HARNESS_LOG_ROOT = Path(tempfile.gettempdir()) / "dgm-swebench-harness"
HARNESS_LOG_FILES = ("report.json", "test_output.txt", "run_instance.log", "patch.diff", "eval.sh")


def harness():
    """(run_instance, make_test_spec) of the installed swebench; a clear error if it is missing or is a
    version whose signatures dgm does not call correctly."""
    try:
        import swebench
        from swebench.harness import run_evaluation
        from swebench.harness.utils import make_test_spec
    except ImportError as exc:
        raise SWEBenchUnavailable(f"grading SWE-bench needs the swebench package ({exc}): pip install -e .[swebench]") from None
    version = getattr(swebench, "__version__", "unknown")
    if version.split(".")[0] != SUPPORTED_HARNESS:
        raise SWEBenchUnavailable(f"swebench {version} is installed; dgm calls the swebench {SUPPORTED_HARNESS}.x harness "
                                  f"(run_instance returning (instance_id, report)): pip install 'swebench>=5,<6'")
    run_evaluation.RUN_EVALUATION_LOG_DIR = HARNESS_LOG_ROOT
    return run_evaluation.run_instance, make_test_spec


def harness_test_spec(row: dict, make_test_spec):
    """The harness's TestSpec for a dataset row; a missing field is named."""
    missing = [key for key in TEST_SPEC_FIELDS if row.get(key) in (None, "")]
    if missing:
        raise SWEBenchUnavailable(f"instance {row.get('instance_id')}: the dataset row lacks {', '.join(missing)}, which "
                                  "the swebench 5 harness needs (use a SWE-bench dataset made for swebench 5)")
    return make_test_spec(row)


def new_run_id() -> str:
    """Unique per grading: the harness names containers and log dirs by run id and returns a report it
    finds under a reused one instead of grading again."""
    return f"dgm-{uuid.uuid4().hex[:16]}"


def docker_client():
    import docker

    return docker.from_env()


def grade_with_harness(run_instance, spec, patch: str, client, timeout: float, log_dir: Path | None) -> GradeResult:
    """Run swebench's run_instance for one patch and read what it returns: (instance_id, report) after a
    graded run, None when it stopped early (patch did not apply, tests timed out, no image...)."""
    iid = spec.instance_id
    run_id = new_run_id()
    prediction = {"instance_id": iid, "model_name_or_path": MODEL_NAME, "model_patch": patch}
    result = run_instance(test_spec=spec, pred=prediction, client=client, run_id=run_id, timeout=math.ceil(timeout))
    harness_dir = HARNESS_LOG_ROOT / run_id / MODEL_NAME / iid
    logs = {name: (harness_dir / name).read_text(errors="replace") for name in HARNESS_LOG_FILES
            if (harness_dir / name).is_file()}
    shutil.rmtree(HARNESS_LOG_ROOT / run_id, ignore_errors=True)
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        for name, text in logs.items():
            (Path(log_dir) / name).write_text(text)
    test_log = logs.get("test_output.txt", "")
    if result is None:
        outcome, reason = _stopped_early(logs)
        return GradeResult(iid, outcome, instance_report(iid, patch=patch, applied=False, status=None), test_log,
                           reason=reason)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict) and iid in result[1]):
        raise SWEBenchUnavailable(f"swebench's run_instance returned {type(result).__name__} {str(result)[:80]!r}; dgm "
                                  f"expects swebench {SUPPORTED_HARNESS}.x's (instance_id, report)")
    report = result[1]
    entry = report[iid]
    if entry.get("resolved"):
        return GradeResult(iid, "resolved", report, test_log)
    if entry.get("patch_successfully_applied"):
        return GradeResult(iid, "unresolved", report, test_log)
    reason = "the test log shows no test results" + (f" ({entry['infra_failure_reason']})"
                                                     if entry.get("infra_failure_reason") else "")
    return GradeResult(iid, "error", report, test_log, reason=reason)


def _stopped_early(logs: dict[str, str]) -> tuple[str, str]:
    if "Timeout error:" in logs.get("test_output.txt", ""):
        return "timeout", "tests timed out"
    instance_log = logs.get("run_instance.log", "")
    if ">>>>> Patch Apply Failed" in instance_log:
        return "error", "model patch does not apply"
    last = [line for line in instance_log.splitlines() if line.strip()][-1:] or ["no harness log"]
    return "error", f"the swebench harness stopped: {last[0][:300]}"
