"""The docker backend's images (dgm/sandbox/images.py): content-hashed tags, offline builds, doctor.

The fingerprint tests need nothing; the others use the real daemon and the images CI builds with
`dgm sandbox build-image all` (skipped without them unless DGM_REQUIRE_DOCKER=1)."""

from __future__ import annotations

import shutil

import pytest

from dgm.cli import main
from dgm.sandbox import images
from dgm.sandbox.base import SandboxError
from dgm.sandbox.docker import _client


@pytest.fixture
def recipes(tmp_path, monkeypatch):
    """A copy of sandbox/ that a test may change."""
    copy = tmp_path / "sandbox"
    shutil.copytree(images.RECIPES_DIR, copy)
    monkeypatch.setattr(images, "RECIPES_DIR", copy)
    return copy


def test_tags_are_content_hashes(recipes):
    before = {name: images.image_tag(name) for name in images.RECIPES}
    assert before["agent"].startswith("dgm-agent:") and len(before["agent"].partition(":")[2]) == 12
    assert {name: images.image_tag(name) for name in images.RECIPES} == before  # stable
    (recipes / "agent" / "requirements.txt").write_text("pytest==9.2.0\n")
    assert images.image_tag("agent") != before["agent"] and images.image_tag("eval") == before["eval"]
    with (recipes / "rootfs" / "base.packages").open("a") as f:
        f.write("less\n")
    after = {name: images.image_tag(name) for name in images.RECIPES}
    assert all(after[n] != before[n] for n in images.RECIPES)  # everything builds on base.packages


def test_recipe_problems_name_the_culprit(recipes):
    (recipes / "python-tools" / "Dockerfile").unlink()
    with pytest.raises(SandboxError, match=r"recipe file .*python-tools/Dockerfile cannot be read"):
        images.image_tag("eval")
    with pytest.raises(SandboxError, match="unknown image 'gpu'; choose one of agent, eval, polyglot, all"):
        images.build_images("gpu")


def test_debian_mirror_is_apts(monkeypatch):
    monkeypatch.delenv("DGM_DEBIAN_MIRROR", raising=False)
    assert images.debian_mirror().startswith("http")
    monkeypatch.setenv("DGM_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    assert images.debian_mirror() == "http://127.0.0.1:9/debian"


@pytest.mark.docker(images=("agent", "eval", "polyglot"))
def test_building_unchanged_images_is_a_no_op():
    results = images.build_images("all")
    assert [r.name for r in results] == ["rootfs-base", "agent", "eval", "rootfs-polyglot", "polyglot"]
    assert not any(r.built for r in results) and all(r.size_mb > 50 for r in results)


@pytest.mark.docker(images=("eval",))
def test_a_failing_build_names_the_image(recipes):
    dockerfile = recipes / "python-tools" / "Dockerfile"  # eval's (shared with agent and polyglot)
    dockerfile.write_text(dockerfile.read_text().replace("CMD", "RUN echo dgm-broken-step && false\nCMD"))
    with pytest.raises(SandboxError, match=r"image eval: docker build failed: .*returned a non-zero code"):
        images.build_images("eval")


@pytest.mark.docker(images=("eval",))
def test_builds_have_no_network(recipes):
    dockerfile = recipes / "python-tools" / "Dockerfile"
    probe = "RUN python3 -c \"import socket; print(sorted(n for _, n in socket.if_nameindex()))\" | grep -x \"\\['lo'\\]\""
    dockerfile.write_text(dockerfile.read_text().replace("CMD", probe + "\nCMD"))
    built = images.build_images("eval")[-1]
    try:
        assert built.built
    finally:
        _client().images.remove(built.tag, force=True)


@pytest.mark.docker
def test_doctor_names_the_missing_image_and_the_command(recipes, capsys):
    assert main(["sandbox", "doctor"]) == 0
    out = capsys.readouterr().out
    assert f"image {images.image_tag('agent')}: built" in " ".join(out.split())
    with (recipes / "rootfs" / "polyglot.packages").open("a") as f:  # only the polyglot images build on it
        f.write("# changed\n")
    main(["sandbox", "doctor"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"image {images.image_tag('polyglot')}: missing" in out
    assert "build the missing images with: dgm sandbox build-image polyglot" in out


@pytest.mark.parametrize("required,expected", [("1", "1 error"), ("", "1 skipped")])
def test_without_a_daemon_docker_tests_fail_when_docker_is_required(tmp_path, required, expected):
    """DGM_REQUIRE_DOCKER=1 (CI) turns the skip of a docker test into a failure that says why."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    # The inner run reports skips as skips, whatever this (CI) run does with its own.
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock", "DGM_REQUIRE_DOCKER": required,
           "PYTHONPATH": str(repo), "DGM_STRICT_SKIPS": ""}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs",
                        "tests/test_sandbox_docker.py::test_a_missing_image_is_a_clear_error"],
                       cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert expected in r.stdout and "no Docker daemon answers" in r.stdout, r.stdout[-2000:]
