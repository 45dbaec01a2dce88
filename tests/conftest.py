"""Fixtures shared across test modules.

`@pytest.mark.docker` tests need a Docker daemon and this checkout's images (`dgm sandbox
build-image all`); `@pytest.mark.docker(images=("polyglot",))` names other images than agent. They
skip when either is missing, unless DGM_REQUIRE_DOCKER=1 (CI): then a missing daemon or image fails.
"""

import functools
import os

import pytest


@pytest.fixture(scope="module")
def backend():
    """The isolating sandbox backend when this machine has one (bwrap), else the local backend."""
    from dgm.sandbox import default_backend
    from dgm.sandbox.base import SandboxError

    try:
        return default_backend()
    except SandboxError:
        return "local"


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("docker")
    if marker is None:
        return
    problem = docker_problem(tuple(marker.kwargs.get("images", ("agent",))))
    if problem is None:
        return
    if os.environ.get("DGM_REQUIRE_DOCKER") == "1":
        pytest.fail(f"DGM_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@functools.lru_cache(maxsize=None)
def docker_problem(images: tuple[str, ...]) -> str | None:
    """Why docker tests needing `images` cannot run here, or None."""
    from dgm.sandbox.docker import _client, daemon_status
    from dgm.sandbox.images import image_tag, missing_images

    ok, reason = daemon_status()
    if not ok:
        return reason
    missing = missing_images(_client(), images)
    if missing:
        return (f"docker image(s) {', '.join(image_tag(n) for n in missing)} not built: "
                f"run `dgm sandbox build-image {missing[0] if len(missing) == 1 else 'all'}`")
    return None
