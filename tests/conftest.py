"""Fixtures shared across test modules."""

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
