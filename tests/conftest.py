"""Fixtures shared across test modules, and the suite's policy on skips.

A skip hides code. Every skip must say what is missing and how to get it; the run ends with one line
counting skips by cause. With DGM_STRICT_SKIPS=1 (set by `.ci/run`) a skip is a failure: CI installs
everything the suite can use on this kind of machine, so anything skipped there is something broken.

`@pytest.mark.docker` tests need a Docker daemon and this checkout's images (`dgm sandbox
build-image all`); `@pytest.mark.docker(images=("polyglot",))` names other images than agent. They
skip when either is missing, unless DGM_REQUIRE_DOCKER=1 (CI): then a missing daemon or image fails.
"""

import functools
import os
import re
from collections import Counter

import pytest

STRICT_SKIPS = os.environ.get("DGM_STRICT_SKIPS") == "1"


@pytest.fixture(scope="module")
def backend():
    """The isolating sandbox backend when this machine has one (bwrap), else the local backend."""
    from dgm.sandbox import default_backend
    from dgm.sandbox.base import SandboxError

    try:
        return default_backend()
    except SandboxError:
        return "local"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under DGM_STRICT_SKIPS=1 (CI must run it): {skip_reason(report)}"


def skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def skip_cause(reason: str) -> str:
    """The part of a reason that names what is missing (before details such as paths or versions)."""
    return re.split(r"[:(]", reason, maxsplit=1)[0].strip() or reason


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        terminalreporter.write_line("skips by cause: none")
        return
    causes = Counter(skip_cause(skip_reason(r)) for r in skipped)
    summary = "; ".join(f"{cause} ({n})" for cause, n in causes.most_common())
    terminalreporter.write_line(f"skips by cause: {summary}")


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
