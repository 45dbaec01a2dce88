"""Content-addressed response cache: the basis of replaying a run at $0.

Key = sha256 of canonical JSON of (real model, the request fields that affect the output,
sample index, run, caller scope). The sample index tells apart repeated identical requests
within one scope: the k-th identical request gets index k, so a replay of stochastic sampling
gets the same sequence of answers.

The run is the cache's own namespace (`ResponseCache(run=...)`): the run id, or for a replay the
id of the run being replayed. Two runs sharing a cache directory (two seeds of one experiment)
therefore never replay each other's answers: their samples stay independent. A resumed run keeps
its run id, so it finds the answers it already paid for.

The scope is (attempt, purpose, task) - attempt ids are deterministic ("generation:slot"), so a
replay or resume lines up. Keeping it in the key means a child whose prompts equal its
parent's still gets fresh samples instead of silently replaying its parent's trajectory (which
would correlate their scores). `share_across_attempts=True` drops the scope from the key: any
attempt of the run then reuses the k-th answer to an identical request (cheaper, not independent
samples).

Files: ``<root>/ab/<hash>.json``, written atomically (temp file + rename), so a crash never
leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

MODES = ("off", "read_write", "replay")

# Request fields that never change what the model answers.
NON_OUTPUT_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier", "timeout"})


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_fingerprint(request: dict) -> str:
    """Hash of the output-relevant part of a request (model included), without sample index."""
    relevant = {k: v for k, v in request.items() if k not in NON_OUTPUT_FIELDS}
    return hashlib.sha256(canonical_json(relevant).encode()).hexdigest()


def cache_key(request: dict, sample_index: int, scope: str | None = None, run: str | None = None) -> str:
    parts = [request_fingerprint(request), sample_index] + ([scope] if scope is not None else [])
    if run is not None:
        parts.append({"run": run})
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


class ResponseCache:
    def __init__(self, root: Path | str, mode: str = "read_write", *, run: str,
                 share_across_attempts: bool = False):
        if mode not in MODES:
            raise ValueError(f"cache mode must be one of {MODES}, got {mode!r}")
        if not run:
            raise ValueError("a response cache belongs to a run: give run=<run id>")
        self.root = Path(root)
        self.mode = mode
        self.run = run
        self.share_across_attempts = share_across_attempts

    def key(self, request: dict, sample_index: int, scope: str) -> str:
        return cache_key(request, sample_index, None if self.share_across_attempts else scope, self.run)

    @property
    def reads(self) -> bool:
        return self.mode in ("read_write", "replay")

    @property
    def writes(self) -> bool:
        return self.mode == "read_write"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The cached response, or None (a corrupt entry counts as a miss and is not trusted)."""
        if not self.reads:
            return None
        try:
            entry = json.loads(self.path(key).read_text())
        except (OSError, ValueError):  # missing, unreadable or half-written by an older version
            return None
        response = entry.get("response") if isinstance(entry, dict) else None
        return response if isinstance(response, dict) else None

    def put(self, key: str, request: dict, sample_index: int, response: dict, scope: str | None = None) -> None:
        if not self.writes:
            return
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": key, "run": self.run, "scope": scope, "sample_index": sample_index, "request": request,
                 "response": response}
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(entry, fh, ensure_ascii=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class SampleCounter:
    """Hands out sample indices per (scope, request fingerprint).

    An index is reserved while a request is in flight and kept only if the request produced an
    answer; a failed request gives its index back, so an agent's retry after an upstream error
    lines up with the cached answer on replay.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._taken: dict[tuple[str, str], set[int]] = {}

    def reserve(self, scope: str, fingerprint: str) -> int:
        with self._lock:
            taken = self._taken.setdefault((scope, fingerprint), set())
            index = 0
            while index in taken:
                index += 1
            taken.add(index)
            return index

    def forget(self, scope: str) -> None:
        """Start the scope's counting over (its caller is re-running from the start)."""
        with self._lock:
            for key in [k for k in self._taken if k[0] == scope]:
                del self._taken[key]

    def release(self, scope: str, fingerprint: str, index: int) -> None:
        with self._lock:
            self._taken.get((scope, fingerprint), set()).discard(index)
