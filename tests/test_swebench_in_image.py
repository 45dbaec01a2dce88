"""SWE-bench agents run inside the instance's image, on /testbed (dgm.agent_run.run_agent_in_image).

Most tests here drive the real DockerSandbox with a unittest.mock docker client, which answers
`get_archive("/testbed")` with tar streams of a small repository as it is before and after the
agent's run, so the patch below is computed by the real `diff_trees` from those copies. The
`@pytest.mark.docker` test does the same for real: a real daemon, an instance image of the offline
suite exported as SWE-bench and built here, the host Python started inside it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from unittest import mock

import pytest

from dgm.agent_run import SandboxPolicy, host_python_for_images, run_agent_in_image
from dgm.bench import load_benchmark
from dgm.bench.base import GradeResult, InImageWorkspace, agent_workspace
from dgm.config import AgentLimits, EvaluationSection, Stage
from dgm.evaluate import Evaluator
from dgm.sandbox.base import SandboxError
from dgm.sandbox.bwrap import python_prefixes

IID = "django__django-11099"
IMAGE = "sweb.eval.x86_64.django_1776_django-11099:latest"
ROW = {"instance_id": IID, "repo": "django/django", "base_commit": "abc", "problem_statement": "Fix the validator",
       "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]", "image": IMAGE}  # swebench 5 rows name their image
BEFORE = {"validators.py": "REGEX = r'^[\\w.@+-]+$'\n", "README": "django\n"}
AFTER = {"validators.py": "REGEX = r'\\A[\\w.@+-]+\\Z'\n", "README": "django\n", "notes.txt": "new file\n"}


def _tar(top: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directory = tarfile.TarInfo(top)
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        for name, text in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            data = text.encode()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _mock_docker(events: list[str], probe_output: bytes = b"3.11\n"):
    """A docker client whose container holds /testbed (BEFORE, then AFTER once the agent ran)."""
    client = mock.MagicMock(name="docker_client")
    container = client.containers.create.return_value
    container.id = "cid"
    container.put_archive.return_value = True
    ran = []

    def get_archive(path):
        events.append(f"get_archive {path}")
        if path == "/testbed":
            return iter([_tar("testbed", AFTER if ran else BEFORE)]), {}
        if path == "/work/out":
            return iter([_tar("out", {"trajectory.json": json.dumps({"exit_status": "submitted"})})]), {}
        raise AssertionError(f"unexpected copy_out of {path}")

    commands = {}

    def exec_create(_cid, argv, **_k):
        commands[f"e{len(commands)}"] = argv
        return {"Id": f"e{len(commands) - 1}"}

    def exec_start(exec_id, **_k):
        if commands[exec_id][1:3] == ["-m", "agent"]:
            events.append("agent")
            ran.append(True)
            return iter([b"agent done\n"])
        events.append("python probe")
        return iter([probe_output])

    container.get_archive.side_effect = get_archive
    client.api.exec_create.side_effect = exec_create
    client.api.exec_start.side_effect = exec_start
    client.api.exec_inspect.return_value = {"ExitCode": 0}
    return client


@pytest.fixture
def bench(tmp_path, monkeypatch):
    dataset = tmp_path / "verified.jsonl"
    dataset.write_text(json.dumps(ROW) + "\n")
    bench = load_benchmark("swebench", dataset=dataset)
    monkeypatch.setattr(bench, "_require_docker", lambda: None)  # prepare_workspace's daemon check
    return bench


@pytest.fixture
def agent_dir(tmp_path):
    agent = tmp_path / "agent_src"
    (agent / "agent").mkdir(parents=True)
    (agent / "agent" / "__main__.py").write_text("print('hi')\n")
    return agent


@pytest.fixture
def socket_file(tmp_path):
    sock = tmp_path / "gw.sock"
    sock.touch()
    return sock


def test_swebench_offers_its_image_and_testbed(bench):
    workspace = agent_workspace(bench, IID)
    assert workspace.image == IMAGE and workspace.repo_path == "/testbed"
    assert workspace.env["PATH"].startswith("/opt/miniconda3/envs/testbed/bin:")
    assert agent_workspace(object(), IID) is None  # benchmarks without the capability: host copy
    with pytest.raises(KeyError, match="nope"):
        bench.agent_workspace("nope")


def test_agent_runs_in_the_instance_image_and_the_patch_comes_from_testbed_copies(tmp_path, bench, agent_dir,
                                                                                 socket_file):
    """Mocked docker client: container from the instance image, locked down, host Python mounted."""
    events: list[str] = []
    client = _mock_docker(events)
    policy = SandboxPolicy("docker", llm_socket=socket_file, backend_options={"client": client})
    run = run_agent_in_image(policy=policy, agent_dir=agent_dir, workspace=bench.agent_workspace(IID),
                             task={"instance_id": IID}, out_dir=tmp_path / "out", llm_env={"DGM_MODEL": "coding"},
                             timeout=30, benchmark=bench.name)

    kw = client.containers.create.call_args.kwargs
    assert kw["image"] == IMAGE and kw["network_mode"] == "none"
    assert kw["cap_drop"] == ["ALL"] and "no-new-privileges" in kw["security_opt"]
    assert kw["user"] == "0:0" and kw["read_only"] is False  # /testbed is the image's, owned by root
    mounts = {m["Target"]: m for m in kw["mounts"]}
    assert mounts["/agent"]["Source"] == str(agent_dir) and mounts["/agent"]["ReadOnly"] is True
    assert mounts["/run/dgm/llm.sock"]["Source"] == str(socket_file)
    for prefix in python_prefixes():  # the host interpreter, read-only at its own path
        assert mounts[prefix]["Source"] == prefix and mounts[prefix]["ReadOnly"] is True
    assert kw["environment"]["PATH"].startswith("/opt/miniconda3/envs/testbed/bin:")

    probe, agent = client.api.exec_create.call_args_list
    assert probe.args[1][0] == sys.executable
    assert agent.args[1] == [sys.executable, "-m", "agent", "--task", "/work/task.json", "--repo", "/testbed",
                             "--out", "/work/out"]
    env = agent.kwargs["environment"]
    assert env["PYTHONPATH"] == "/agent" and env["DGM_MODEL"] == "coding"

    assert events == ["python probe", "get_archive /testbed", "agent", "get_archive /testbed",
                      "get_archive /work/out"]
    assert "-REGEX = r'^[\\w.@+-]+$'" in run.patch and "+REGEX = r'\\A[\\w.@+-]+\\Z'" in run.patch
    assert "b/notes.txt" in run.patch and "README" not in run.patch
    assert run.exit_status == "submitted" and (tmp_path / "out" / "trajectory.json").exists()
    assert (tmp_path / "out" / "agent_output.txt").read_text() == "agent done\n"
    client.containers.create.return_value.remove.assert_called_once_with(force=True, v=True)


class FakeLLM:
    """Stands in for LLMAccess: the agent never calls it (the docker exec is mocked)."""

    def context(self, *args):
        return args

    @contextlib.contextmanager
    def agent_env(self, _context):
        yield {"OPENAI_API_KEY": "per-attempt-token", "DGM_MODEL": "coding"}


def test_evaluator_runs_swebench_tasks_in_the_image_and_grades_that_patch(tmp_path, bench, agent_dir, socket_file,
                                                                          monkeypatch):
    """Mocked docker client and a recorded grade(): the patch graded is the /testbed before/after diff."""
    graded = {}

    def grade(task_id, patch, **kw):
        graded.update(task_id=task_id, patch=patch, backend=kw["backend"])
        return GradeResult(task_id, "resolved", {})

    monkeypatch.setattr(bench, "grade", grade)
    policy = SandboxPolicy("docker", llm_socket=socket_file, backend_options={"client": _mock_docker([])})
    evaluator = Evaluator(benchmark=bench, policy=policy, llm=FakeLLM(),
                          cfg=EvaluationSection(benchmark="swebench", stages=[Stage(tasks=[IID])]),
                          limits=AgentLimits())
    evaluation = evaluator.evaluate(agent_dir, "n1", "1:0", tmp_path / "attempt")

    assert [(r.task_id, r.outcome, r.agent_exit) for r in evaluation.results] == [(IID, "resolved", "submitted")]
    assert graded["task_id"] == IID and graded["backend"] == "docker" and "b/validators.py" in graded["patch"]
    assert (tmp_path / "attempt" / "tasks" / IID / "model_patch.diff").read_text() == graded["patch"]


def test_a_non_docker_backend_is_a_clear_error(tmp_path, bench, agent_dir):
    with pytest.raises(SandboxError, match=r"benchmark 'swebench'.*backend 'bwrap'"):
        run_agent_in_image(policy=SandboxPolicy("bwrap"), agent_dir=agent_dir, workspace=InImageWorkspace(IMAGE),
                           task={}, out_dir=tmp_path / "o", llm_env={}, timeout=5, benchmark="swebench")
    # ... and the evaluator says so before any task runs
    with pytest.raises(ValueError, match=rf"benchmark 'swebench'.*{IID}.*backend 'bwrap'"):
        Evaluator(benchmark=bench, policy=SandboxPolicy("bwrap"), llm=FakeLLM(),
                  cfg=EvaluationSection(benchmark="swebench", stages=[Stage(tasks=[IID])]), limits=AgentLimits())


def test_a_host_python_that_cannot_start_in_the_image_is_named(tmp_path, agent_dir):
    """Mocked docker client: the probe exits 1 the way a too-new glibc makes it fail; no agent runs."""
    events: list[str] = []
    client = _mock_docker(events, probe_output=b"python: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found\n")
    client.api.exec_inspect.return_value = {"ExitCode": 1}
    policy = SandboxPolicy("docker", backend_options={"client": client})
    with pytest.raises(SandboxError, match=rf"{sys.executable} cannot start inside image {IMAGE}.*GLIBC_2.38"):
        run_agent_in_image(policy=policy, agent_dir=agent_dir, workspace=InImageWorkspace(IMAGE), task={},
                           out_dir=tmp_path / "o", llm_env={}, timeout=5)
    assert events == ["python probe"]
    client.containers.create.return_value.remove.assert_called_once()


def test_a_python_under_usr_cannot_be_mounted_into_an_image(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    monkeypatch.setattr("dgm.sandbox.bwrap.python_prefixes", lambda: [])
    with pytest.raises(SandboxError, match="/usr/bin/python3.*under /usr"):
        host_python_for_images()


def test_hidden_dirs_get_an_empty_read_only_tmpfs():
    """Mocked docker client: a non-editable install of dgm inside the mounted prefix stays invisible."""
    from dgm.sandbox import open_sandbox
    from dgm.sandbox.base import SandboxSpec

    client = _mock_docker([])
    with open_sandbox("docker", SandboxSpec(), client=client, hidden_dirs=["/opt/py/site-packages/dgm"],
                      user="0:0"):
        pass
    tmpfs = client.containers.create.call_args.kwargs["tmpfs"]
    assert tmpfs["/opt/py/site-packages/dgm"].startswith("ro") and "uid=0" in tmpfs["/home/sandbox"]


@pytest.mark.docker(images=("eval",))
def test_real_image_round_trip(tmp_path):
    """A real daemon and a real instance image: the offline suite's confparse__confparse-11 exported as
    SWE-bench and built here (or DGM_TEST_SWEBENCH_IMAGE, already present); never pulls. A tiny agent
    edits /testbed with the host's Python."""
    image = os.environ.get("DGM_TEST_SWEBENCH_IMAGE")
    if image is None:
        from dgm.bench.swebench_export import build_images, export_rows

        local = load_benchmark("local")
        image = build_images(local, export_rows(local, ["confparse__confparse-11"]))[0].image
    agent = tmp_path / "agent_src"
    (agent / "agent").mkdir(parents=True)
    (agent / "agent" / "__main__.py").write_text(
        "import json, pathlib, sys\n"
        "args = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
        "pathlib.Path(args['--repo'], 'DGM_PROBE.txt').write_text(sys.version)\n"
        "pathlib.Path(args['--out'], 'trajectory.json').write_text(json.dumps({'exit_status': 'submitted'}))\n")
    run = run_agent_in_image(policy=SandboxPolicy("docker"), agent_dir=agent, workspace=InImageWorkspace(image),
                             task={}, out_dir=tmp_path / "out", llm_env={}, timeout=300)
    assert run.result.exit_code == 0, run.result.output
    assert "b/DGM_PROBE.txt" in run.patch and sys.version.split()[0] in run.patch
