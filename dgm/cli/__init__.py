"""The `dgm` console script.

Every module in this package that defines ``register(subparsers)`` contributes subcommands,
so each part of the framework owns its own commands without editing a central list.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgm",
        description="Darwin Gödel Machine: grow an archive of self-improving coding agents.",
        epilog="Example: dgm run experiments/quickstart.yaml",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


def add_command(subparsers, name: str, handler, help: str, example: str) -> argparse.ArgumentParser:
    """Create a subcommand whose --help ends with a runnable example."""
    parser = subparsers.add_parser(
        name,
        help=help.replace("%", "%%"),  # argparse %-formats help strings ("95% interval")
        description=help,
        epilog=f"Example: {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


if __name__ == "__main__":
    sys.exit(main())
