"""`dgm sandbox exec | doctor | cleanup | build-image`: try the sandbox backends by hand, build the images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dgm.cli import add_command


def register(subparsers) -> None:
    parser = subparsers.add_parser("sandbox", help="run commands in a sandbox, check and clean up backends",
                                   description="Sandbox tools. Example: dgm sandbox exec --backend bwrap -- ls /")
    sub = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", required=True)

    p = add_command(sub, "exec", _exec, "run one command in a fresh sandbox and exit with its exit code",
                    "dgm sandbox exec --backend bwrap --timeout 10 --workdir ./myrepo -- python -m pytest -q")
    p.add_argument("--backend", default=None, help="bwrap | docker | local (default: bwrap if it works here)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before every process is killed (default 60)")
    p.add_argument("--workdir", type=Path, default=None, help="host dir copied to /work (default: empty /work)")
    p.add_argument("--image", default=None, help="docker image (docker backend only)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")

    add_command(sub, "doctor", _doctor, "show which sandbox backends work on this machine, and why not",
                "dgm sandbox doctor")

    p = add_command(sub, "cleanup", _cleanup, "remove sandbox dirs, cgroups and containers left by crashed runs",
                    "dgm sandbox cleanup --run 2025-06-01-quickstart")
    p.add_argument("--run", default=None, help="only this run's containers/dirs (default: all whose owner is gone)")

    p = add_command(sub, "build-image", _build_image,
                    "build the docker backend's images offline (debootstrap + wheels; unchanged ones are kept)",
                    "dgm sandbox build-image all")
    p.add_argument("target", nargs="?", default="all", choices=["agent", "eval", "polyglot", "all"],
                   help="which image (default: all)")


def _exec(args) -> int:
    from dgm.sandbox import default_backend, open_sandbox
    from dgm.sandbox.base import SandboxError, SandboxSpec

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("error: no command given (put it after --)", file=sys.stderr)
        return 2
    if args.workdir is not None and not args.workdir.is_dir():
        print(f"error: --workdir {args.workdir} is not a directory", file=sys.stderr)
        return 2
    options = {"image": args.image} if args.image and args.backend == "docker" else {}
    try:
        backend = args.backend or default_backend()
        with open_sandbox(backend, SandboxSpec(source=args.workdir), **options) as sb:
            result = sb.exec(cmd, timeout=args.timeout)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(result.output)
    if result.timed_out:
        print(f"[dgm sandbox: timed out after {args.timeout:g}s; all processes killed]", file=sys.stderr)
    return result.exit_code


def _doctor(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgm.sandbox import doctor

    table = Table(title="dgm sandbox backends")
    table.add_column("backend")
    table.add_column("works here")
    table.add_column("details", overflow="fold")
    statuses = doctor()
    for status in statuses:
        table.add_row(status.name, "[green]yes[/]" if status.available else "[red]no[/]", status.reason)
    console = Console()
    console.print(table)
    if any(s.name == "docker" and s.available for s in statuses):
        _print_images(console)
    return 0 if any(s.available and s.name != "local" for s in statuses) else 1


def _print_images(console) -> None:
    """Which of the docker backend's images this checkout expects are missing, and what builds them."""
    from dgm.sandbox.docker import _client
    from dgm.sandbox.images import TARGETS, image_tag, missing_images

    missing = missing_images(_client())
    for name in TARGETS["all"]:
        state = "[red]missing[/]" if name in missing else "[green]built[/]"
        console.print(f"image {image_tag(name)}: {state}")
    if missing:
        target = missing[0] if len(missing) == 1 else "all"
        console.print(f"build the missing images with: [bold]dgm sandbox build-image {target}[/]")


def _cleanup(args) -> int:
    from dgm.sandbox import cleanup_leftovers

    counts = cleanup_leftovers(args.run)
    print(f"removed {counts['dirs']} sandbox dirs, {counts['cgroups']} cgroups, {counts['containers']} containers")
    return 0


def _build_image(args) -> int:
    from dgm.sandbox.base import SandboxError
    from dgm.sandbox.images import build_images

    try:
        results = build_images(args.target, progress=print)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for image in results:
        how = f"built in {image.seconds:.0f} s" if image.built else "up to date"
        print(f"{image.tag}  {how}  {image.size_mb:.0f} MB")
    return 0
