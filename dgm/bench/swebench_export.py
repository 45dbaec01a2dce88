"""The offline suite as a SWE-bench dataset, with its images built here, for the installed harness.

    dgm tasks export-swebench local --out local-swebench.jsonl
    dgm tasks validate swebench:local-swebench.jsonl          # graded by swebench's own run_instance

One stage per function, plain data between them:

    task dir  --export_row-->  dataset row (the fields swebench 5's make_test_spec reads, plus the
                               usual problem_statement / patch / test_patch / base_commit ...)
    rows      --build_images-->  sweb.env.py.x86_64.<fingerprint>:latest  (one environment: the
                               image's own Python 3.11 + pytest as env `testbed`, conda-style activate)
                               sweb.eval.x86_64.<instance id>:latest  (the repo at its base commit in
                               /testbed, with its git history)

Every image comes from dgm's offline recipes (sandbox/swebench-env, sandbox/swebench-instance on
top of dgm-eval); nothing is pulled. The eval script is the task's own eval.sh behind the
activation lines every SWE-bench eval script starts with, and with the test command's exit status
left for the harness to record (record_test_exit_code). With registry access the same grading
runs on the official dataset and its published images: `dgm tasks validate
swebench:SWE-bench/SWE-bench_Verified` (see the README).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .local import LocalBenchmark, TaskError

ENV_RECIPE = "swebench-env"
INSTANCE_RECIPE = "swebench-instance"
LOG_PARSER = "parse_log_pytest"  # the harness's parser for `pytest -rA` output
FINGERPRINT_LABEL = "dgm.fingerprint"
ACTIVATION = ["source /opt/miniconda3/bin/activate", "conda activate testbed", "cd /testbed"]
# eval.sh's own exit-status bookkeeping; the harness records the status itself (TEST_EXIT_CODE)
OWN_STATUS_LINES = ("rc=$?", 'echo ">>>>> Test Exit Code: $rc"', "exit $rc")


@dataclass(frozen=True)
class InstanceImage:
    instance_id: str
    image: str
    built: bool
    seconds: float


def instance_image_name(instance_id: str) -> str:
    """What the installed harness calls a local instance image (ImageSpec.name without a namespace)."""
    return f"sweb.eval.x86_64.{instance_id}:latest".lower()


def env_image_name() -> str:
    from dgm.sandbox.images import fingerprint

    return f"sweb.env.py.x86_64.{fingerprint(ENV_RECIPE)}:latest"


def export_rows(bench: LocalBenchmark, ids: list[str]) -> list[dict]:
    return [export_row(bench, instance_id) for instance_id in ids]


def export_row(bench: LocalBenchmark, instance_id: str) -> dict:
    task = bench.task(instance_id)
    subsets = sorted(name for name, members in bench.subsets().items() if instance_id in members)
    return {
        "instance_id": instance_id,
        "repo": f"dgm-{bench.name}/{task.repo}",  # dgm-local/..., dgm-synth/...
        "base_commit": task.meta["base_commit"],
        "environment_setup_commit": task.meta["base_commit"],
        "version": str(task.meta["version"]),
        "created_at": str(task.meta["created_at"]),
        "problem_statement": task.read("problem_statement.md"),
        "hints_text": "",
        "patch": task.read("gold.patch"),
        "test_patch": task.read("test.patch"),
        "FAIL_TO_PASS": json.dumps(task.fail_to_pass),
        "PASS_TO_PASS": json.dumps(task.pass_to_pass),
        "image": instance_image_name(instance_id),
        "log_parser": LOG_PARSER,
        "eval_type": "pass_and_fail",
        "eval_script": eval_script(instance_id, task.read("eval.sh")),
        "dgm_subsets": subsets,  # the local suite's subsets (small, medium...), for `swebench:FILE:small`
    }


def eval_script(instance_id: str, local_eval: str) -> str:
    """The task's eval.sh as a SWE-bench eval script: activation first, the harness records the status."""
    lines = local_eval.rstrip("\n").split("\n")
    if not lines or not lines[0].startswith("#!"):
        raise TaskError(f"task {instance_id}: eval.sh does not start with a #! line")
    body = [line for line in lines[1:] if line.strip() not in OWN_STATUS_LINES]
    if len(body) != len(lines) - 1 - len(OWN_STATUS_LINES):
        raise TaskError(f"task {instance_id}: eval.sh does not end with the expected exit-status lines "
                        f"({'; '.join(OWN_STATUS_LINES)}); rebuild the task with benchmarks/tools/build_tasks.py")
    return "\n".join(["#!/bin/bash", *ACTIVATION, *body]) + "\n"


def write_dataset(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def build_images(bench: LocalBenchmark, rows: list[dict], client=None, progress=None) -> list[InstanceImage]:
    """The environment image, then one instance image per row (kept when its inputs did not change)."""
    from dgm.sandbox.docker import _client
    from dgm.sandbox.images import build_one, chain, image_tag

    client = _client(client)
    for name in chain(ENV_RECIPE):
        build_one(name, client, progress)
    env_tag = env_image_name()  # the same image under the harness's naming
    client.images.get(image_tag(ENV_RECIPE)).tag(*env_tag.split(":"))
    return [_build_instance(bench, row, env_tag, client, progress) for row in rows]


def _build_instance(bench: LocalBenchmark, row: dict, env_tag: str, client, progress) -> InstanceImage:
    import time

    from dgm.sandbox.images import DockerfileRecipe, fingerprint

    started = time.monotonic()
    wanted = hashlib.sha256(json.dumps([env_tag, fingerprint(ENV_RECIPE), row["instance_id"], row["base_commit"],
                                        _recipe_text()]).encode()).hexdigest()[:12]
    if _label(client, row["image"]) == wanted:
        return InstanceImage(row["instance_id"], row["image"], False, time.monotonic() - started)
    if progress:
        progress(f"building {row['image']} ...")
    with tempfile.TemporaryDirectory(prefix="dgm-testbed-") as tmp:
        testbed = Path(tmp) / "testbed"
        bench.prepare_workspace(row["instance_id"], testbed)  # the base commit, checked against task.yaml
        DockerfileRecipe(INSTANCE_RECIPE, ENV_RECIPE).build(row["image"], env_tag, client,
                                                            context_files={"testbed": testbed},
                                                            labels={FINGERPRINT_LABEL: wanted})
    return InstanceImage(row["instance_id"], row["image"], True, time.monotonic() - started)


def _label(client, image: str) -> str | None:
    import docker.errors

    try:
        return (client.images.get(image).labels or {}).get(FINGERPRINT_LABEL)
    except docker.errors.ImageNotFound:
        return None


def _recipe_text() -> str:
    from dgm.sandbox.images import RECIPES_DIR

    return (RECIPES_DIR / INSTANCE_RECIPE / "Dockerfile").read_text()


# -- validating a SWE-bench dataset through the harness ------------------------------------------

WRONG_PATCH = """\
diff --git a/dgm_not_a_fix.txt b/dgm_not_a_fix.txt
new file mode 100644
--- /dev/null
+++ b/dgm_not_a_fix.txt
@@ -0,0 +1 @@
+a patch that applies and fixes nothing
"""


@dataclass
class HarnessValidation:
    instance_id: str
    outcomes: dict[str, str]  # gold / empty / wrong -> the grade's outcome
    problems: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_with_harness(bench, instance_id: str, *, timeout: float, local=None,
                          local_backend: str | None = None) -> HarnessValidation:
    """Gold resolves, an empty and a wrong patch do not, all graded by the benchmark (the harness).

    `local`: the local suite the dataset was exported from; each grade must then agree with the
    local grading of the same patch (outcome and every test's status)."""
    import time

    started = time.monotonic()
    row = bench.row(instance_id)
    patches = {"gold": row["patch"], "empty": "", "wrong": WRONG_PATCH}
    outcomes, problems = {}, []
    for kind, patch in patches.items():
        try:
            graded = bench.grade(instance_id, patch, backend="docker", timeout=timeout)
        except Exception as exc:  # one broken instance is reported, the others still run
            problems.append(f"{kind} patch: grading crashed: {type(exc).__name__}: {exc}")
            continue
        outcomes[kind] = graded.outcome
        if (graded.outcome == "resolved") != (kind == "gold"):
            problems.append(f"{kind} patch: {graded.outcome} {graded.reason or ''}".strip())
        if local is not None:
            mine = local.grade(instance_id, patch, backend=local_backend, timeout=timeout)
            if mine.outcome != graded.outcome or _statuses(mine, instance_id) != _statuses(graded, instance_id):
                problems.append(f"{kind} patch: harness says {graded.outcome} {_statuses(graded, instance_id)}, "
                                f"the local grading {mine.outcome} {_statuses(mine, instance_id)}")
    return HarnessValidation(instance_id, outcomes, problems, time.monotonic() - started)


def _statuses(graded, instance_id: str) -> dict:
    return graded.report.get(instance_id, {}).get("tests_status", {})
