"""events.jsonl: an append-only record of every decision and its inputs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator


class EventLog:
    def __init__(self, path: Path, *, writable: bool = True):
        self.path = Path(path)
        self._lock = threading.Lock()
        if writable:  # a reader (dashboard, live view) never writes to a run's files
            self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A kill -9 mid-write leaves a partial last line; start the next event on a fresh line."""
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb+") as f:
                f.seek(-1, 2)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def append(self, event: str, **data: Any) -> None:
        line = json.dumps({"ts": round(time.time(), 3), "event": event, **data}, sort_keys=True, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    def read(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    # A kill -9 can cut the last line short; everything before it is intact.
                    continue
