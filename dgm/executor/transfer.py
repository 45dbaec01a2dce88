"""Directories as bytes: how agent code travels to workers and artifacts come back (no shared disk)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def pack(directory: Path) -> bytes:
    """A gzipped tar of the directory's contents (symlinks kept as links)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=3) as tar:
        tar.add(directory, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, dest: Path) -> Path:
    """Extract `pack` output into dest; the "data" filter refuses absolute paths and links out of dest."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest
