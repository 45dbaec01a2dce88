"""Git run the same way on every machine: the user's configuration is ignored, and commits get a
fixed identity and clock, so the same tree (and parent) always gives the same commit SHA."""

from __future__ import annotations

import os
from typing import Mapping

FIXED_DATE = "2025-05-29T00:00:00+00:00"


def isolated_env(*, name: str = "dgm", email: str = "dgm@localhost", date: str = FIXED_DATE,
                 base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without GIT_* variables, plus a fixed identity."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_AUTHOR_DATE=date,
        GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email, GIT_COMMITTER_DATE=date,
    )
    return env
