"""Extracting tar streams that come out of a sandbox (docker get_archive) without trusting them.

Python's `tarfile.data_filter` already refuses absolute names, `..`, links leading out of the
destination, devices and fifos; we wrap it so a bad member is skipped (and logged) instead of
aborting the whole copy, and so the archive's top-level name can be renamed to the destination.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def make_tar(host_path: Path, arcname: str, owner: tuple[int, int] | None = None) -> bytes:
    """A tar of host_path stored under arcname; symlinks are stored as links, not followed.

    `owner` (uid, gid): every entry belongs to them, so the user inside can change what was copied in."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(host_path), arcname=arcname, recursive=True, filter=_chown(owner))
    return buffer.getvalue()


def make_tar_of_contents(directory: Path, owner: tuple[int, int] | None = None) -> bytes:
    """A tar of what `directory` holds (no top-level entry), as make_tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for child in sorted(Path(directory).iterdir()):
            tar.add(str(child), arcname=child.name, recursive=True, filter=_chown(owner))
    return buffer.getvalue()


def _chown(owner: tuple[int, int] | None):
    if owner is None:
        return None

    def chown(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = owner[0], owner[1], "", ""
        return info

    return chown


def safe_extract(tar: tarfile.TarFile, dest: Path, top_name: str) -> list[str]:
    """Extract members under `top_name/` to `dest` (the top renamed to dest); returns skipped names.

    Extraction happens in a fresh staging dir next to dest, so "inside the destination" for the
    link checks means inside the copied tree only.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".dgm-copy-", dir=dest.parent) as staging:
        members = [m for m in tar.getmembers() if _under(m.name, top_name) or skipped.append(m.name)]

        def checked(member: tarfile.TarInfo, path: str):
            rel = member.name.rstrip("/")[len(top_name):].lstrip("/")
            member = member.replace(name=os.path.join("out", rel) if rel else "out", deep=False)
            if member.islnk():  # hard links are named relative to the archive root: rename too
                rel_target = member.linkname[len(top_name):].lstrip("/") if _under(member.linkname, top_name) else None
                if rel_target is None:
                    skipped.append(member.name)
                    return None
                member = member.replace(linkname=os.path.join("out", rel_target), deep=False)
            try:
                return tarfile.data_filter(member, path)
            except tarfile.FilterError as exc:
                log.warning("copy_out: skipped %s (%s)", member.name, exc)
                skipped.append(member.name)
                return None

        tar.extractall(staging, members=members, filter=checked)
        extracted = Path(staging) / "out"
        if not extracted.exists() and not extracted.is_symlink():
            return skipped
        if dest.is_dir() and extracted.is_dir() and not extracted.is_symlink():
            shutil.copytree(extracted, dest, symlinks=True, dirs_exist_ok=True)
        else:
            os.replace(extracted, dest)
    return skipped


def _under(name: str, top: str) -> bool:
    name = name.rstrip("/")
    return name == top or name.startswith(top + "/")
