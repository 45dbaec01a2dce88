"""Directories as bytes: how agent code travels to workers and artifacts come back (no shared disk)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path


def pack(directory: Path) -> bytes:
    """A gzipped tar of the directory's contents (symlinks kept as links)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=3) as tar:
        tar.add(directory, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, dest: Path) -> Path:
    """Extract `pack` output into dest, refusing absolute paths, devices and links out of dest."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return extract_safely(tar, dest)


def extract_safely(tar: tarfile.TarFile, dest: Path) -> Path:
    """tar.extractall with the "data" filter, or an equivalent check where Python has no filters
    (before 3.11.4, e.g. Debian 12's 3.11.2: the system Python of many cluster machines)."""
    dest.mkdir(parents=True, exist_ok=True)
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
    else:
        tar.extractall(dest, members=[_checked(m, dest) for m in tar.getmembers()])
    return dest


def _checked(member: tarfile.TarInfo, dest: Path) -> tarfile.TarInfo:
    root = os.path.realpath(dest)
    target = os.path.realpath(os.path.join(root, member.name))
    if member.isdev() or os.path.isabs(member.name) or os.path.commonpath([root, target]) != root:
        raise tarfile.TarError(f"refusing {member.name!r}: outside the destination or a device")
    if member.issym() or member.islnk():
        base = os.path.dirname(target) if member.issym() else root
        link = os.path.realpath(os.path.join(base, member.linkname))
        if os.path.isabs(member.linkname) or os.path.commonpath([root, link]) != root:
            raise tarfile.TarError(f"refusing link {member.name!r} -> {member.linkname!r}: outside the destination")
    return member
