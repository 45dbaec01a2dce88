"""The docker backend's images, built on this machine from nothing a registry serves.

    rootfs-base      debootstrap --variant=minbase bookworm + sandbox/rootfs/base.packages, docker import
    rootfs-polyglot  the same, plus sandbox/rootfs/polyglot.packages (compilers and test tools)
    agent            FROM rootfs-base: sandbox/python-tools/ with the wheels of sandbox/agent/requirements.txt
    eval             FROM rootfs-base: the same with sandbox/eval/requirements.txt
    polyglot         FROM rootfs-polyglot: the same with the agent's requirements (agents and grading)

Debian packages come from the Debian mirror apt uses here (debootstrap runs on the host); Python
packages are wheels `pip download`ed on the host into the build context and installed with
`pip --no-index`, and every Dockerfile build runs with network "none". Nothing is pulled.

Every image is tagged `dgm-<name>:<fingerprint>`, a hash of all its inputs (package lists,
Dockerfile, requirements, its parent's fingerprint), so building an unchanged image is a no-op and
`image_tag("agent")` names the image this checkout's code expects.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .base import SandboxError

log = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parents[2] / "sandbox"  # the repo's sandbox/
SUITE = "bookworm"
IMAGE_PYTHON = "3.11"  # bookworm's python3: the wheels are downloaded for it
LABEL = "dgm.image"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dgm" / "images"


@dataclass(frozen=True)
class BuiltImage:
    name: str
    tag: str
    built: bool  # False: the tag existed already
    seconds: float
    size_mb: float


class ImageRecipe(Protocol):
    """One image: what decides its content (fingerprint) and how to make it."""

    name: str
    parent: str | None  # the recipe this one builds FROM

    def inputs(self) -> list[bytes]:
        """Everything that decides the image's content, except its parent's fingerprint."""

    def build(self, tag: str, parent_tag: str | None, client) -> None: ...


@dataclass(frozen=True)
class RootfsRecipe:
    """A Debian root filesystem made by debootstrap on the host and `docker import`ed."""

    name: str
    packages: tuple[str, ...]  # files under sandbox/rootfs/, one Debian package a line
    parent: str | None = None

    def inputs(self) -> list[bytes]:
        return [f"debootstrap minbase {SUITE}".encode(), *(_read(f"rootfs/{p}") for p in self.packages)]

    def build(self, tag: str, parent_tag: str | None, client) -> None:
        packages = sorted({line.strip() for p in self.packages for line in _read(f"rootfs/{p}").decode().splitlines()
                           if line.strip() and not line.lstrip().startswith("#")})
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not Path(debootstrap).exists():
            raise SandboxError(f"image {self.name}: debootstrap is not installed (apt-get install debootstrap)")
        CACHE_DIR.joinpath("debs").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="dgm-rootfs-", dir=_scratch()) as tmp:
            root = Path(tmp) / "root"
            _run([debootstrap, "--variant=minbase", f"--include={','.join(packages)}",
                  f"--cache-dir={CACHE_DIR / 'debs'}", SUITE, str(root), debian_mirror()], f"image {self.name}")
            _slim(root)
            archive = Path(tmp) / "rootfs.tar"
            _run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), "."], f"image {self.name}")
            repository, _, version = tag.partition(":")
            client.api.import_image_from_file(str(archive), repository=repository, tag=version,
                                              changes=[f"LABEL {LABEL}={self.name}", "ENV LANG=C.UTF-8"])


@dataclass(frozen=True)
class DockerfileRecipe:
    """sandbox/<recipe>/ (a Dockerfile and the files it copies; recipe defaults to the name) FROM the
    parent (build arg BASE), with the wheels of `requirements` in the context's wheels/."""

    name: str
    parent: str
    requirements: str | None = None  # a requirements file under sandbox/, downloaded as wheels
    recipe: str | None = None

    @property
    def recipe_dir(self) -> Path:
        return RECIPES_DIR / (self.recipe or self.name)

    def inputs(self) -> list[bytes]:
        own = sorted(p.relative_to(RECIPES_DIR).as_posix() for p in self.recipe_dir.rglob("*") if p.is_file())
        dockerfile = (self.recipe_dir / "Dockerfile").relative_to(RECIPES_DIR).as_posix()
        files = dict.fromkeys([dockerfile, *([self.requirements] if self.requirements else []), *own])
        return [f"python {IMAGE_PYTHON}".encode(), *(_read(f) for f in files)]

    def build(self, tag: str, parent_tag: str | None, client, context_files: dict[str, Path] | None = None,
              labels: dict[str, str] | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix=f"dgm-ctx-{self.name}-", dir=_scratch()) as tmp:
            context = Path(tmp) / "context"
            shutil.copytree(self.recipe_dir, context, symlinks=True)
            wheels = context / "wheels"
            wheels.mkdir()
            if self.requirements:
                shutil.copy(RECIPES_DIR / self.requirements, wheels / "requirements.txt")
                _run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                      f"--python-version={IMAGE_PYTHON}", "-d", str(wheels), "-r", str(wheels / "requirements.txt")],
                     f"image {self.name}: pip download")
            else:
                (wheels / "requirements.txt").write_text("")
            for name, source in (context_files or {}).items():  # e.g. a task's repository
                shutil.copytree(source, context / name, symlinks=True)
            lines = []
            for chunk in client.api.build(path=str(context), tag=tag, buildargs={"BASE": parent_tag},
                                          network_mode="none", rm=True, forcerm=True, decode=True,
                                          labels={LABEL: self.name, **(labels or {})}):
                if "error" in chunk:
                    tail = "".join(lines[-15:])
                    raise SandboxError(f"image {self.name}: docker build failed: {chunk['error'].strip()}\n{tail}")
                lines.append(chunk.get("stream", ""))


RECIPES: dict[str, ImageRecipe] = {r.name: r for r in (
    RootfsRecipe("rootfs-base", ("base.packages",)),
    RootfsRecipe("rootfs-polyglot", ("base.packages", "polyglot.packages")),
    DockerfileRecipe("agent", "rootfs-base", "agent/requirements.txt", recipe="python-tools"),
    DockerfileRecipe("eval", "rootfs-base", "eval/requirements.txt", recipe="python-tools"),
    DockerfileRecipe("polyglot", "rootfs-polyglot", "agent/requirements.txt", recipe="python-tools"),  # agents too
    DockerfileRecipe("swebench-env", "eval"),  # the exported local suite's SWE-bench environment image
)}
TARGETS = {"agent": ["agent"], "eval": ["eval"], "polyglot": ["polyglot"], "all": ["agent", "eval", "polyglot"]}


def fingerprint(name: str) -> str:
    recipe = _recipe(name)
    digest = hashlib.sha256(name.encode())
    for part in recipe.inputs() + ([fingerprint(recipe.parent).encode()] if recipe.parent else []):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:12]


def image_tag(name: str) -> str:
    """The tag of image `name` as this checkout's recipes define it (e.g. dgm-agent:3f2a...)."""
    return f"dgm-{name}:{fingerprint(name)}"


def chain(name: str) -> list[str]:
    """The recipes to build for `name`, parents first."""
    recipe = _recipe(name)
    return (chain(recipe.parent) if recipe.parent else []) + [name]


def missing_images(client, names=TARGETS["all"]) -> list[str]:
    return [name for name in names if not _exists(client, image_tag(name))]


def build_images(target: str = "all", client=None, progress=None) -> list[BuiltImage]:
    """Build `target` (agent | eval | polyglot | all) and what it builds on; existing tags are kept."""
    from .docker import _client

    if target not in TARGETS:
        raise SandboxError(f"unknown image {target!r}; choose one of {', '.join(TARGETS)}")
    client = _client(client)
    return [build_one(name, client, progress) for name in dict.fromkeys(n for t in TARGETS[target] for n in chain(t))]


def build_one(name: str, client, progress=None) -> BuiltImage:
    """Build one recipe whose parent exists (see chain()), unless its tag exists already."""
    recipe, tag = _recipe(name), image_tag(name)
    started = time.monotonic()
    built = not _exists(client, tag)
    if built:
        if progress:
            progress(f"building {tag} ...")
        recipe.build(tag, image_tag(recipe.parent) if recipe.parent else None, client)
    result = BuiltImage(name, tag, built, time.monotonic() - started, client.images.get(tag).attrs.get("Size", 0) / 1e6)
    if progress:
        progress(f"{tag}: {'built in %.0f s' % result.seconds if built else 'up to date'}, {result.size_mb:.0f} MB")
    return result


def debian_mirror() -> str:
    """The Debian mirror apt uses on this host ($DGM_DEBIAN_MIRROR overrides)."""
    if os.environ.get("DGM_DEBIAN_MIRROR"):
        return os.environ["DGM_DEBIAN_MIRROR"]
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and not words[1].rstrip("/").endswith("-security"):
                return words[1]
            if words[:1] == ["deb"] and len(words) > 1:
                url = next((w for w in words[1:] if "://" in w), None)
                if url and not url.rstrip("/").endswith("-security"):
                    return url
    raise SandboxError("no Debian mirror found in /etc/apt/sources.list*; set DGM_DEBIAN_MIRROR")


def _slim(root: Path) -> None:
    """What a container never needs: downloaded .debs, apt lists, docs, man pages, other locales."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"):
        target = root / sub
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name != "lock":
                    child.unlink(missing_ok=True)


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"{what}: {Path(argv[0]).name} exited {proc.returncode}: {proc.stdout.strip()[-1500:]}")


def _read(relative: str) -> bytes:
    path = RECIPES_DIR / relative
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SandboxError(f"image recipe file {path} cannot be read: {exc.strerror}") from None


def _recipe(name: str) -> ImageRecipe:
    if name not in RECIPES:
        raise SandboxError(f"unknown image {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def _exists(client, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _scratch() -> str:
    """Rootfs trees and build contexts are big: keep them off a small tmpfs /tmp."""
    path = CACHE_DIR / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
