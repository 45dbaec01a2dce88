"""`dgm ui RUN [RUN2 ...]`: serve the local dashboard (loopback by default, read-only)."""

from __future__ import annotations

import sys

from dgm.cli import add_command
from dgm.store import StoreError


def register(subparsers) -> None:
    p = add_command(subparsers, "ui", _ui,
                    "Serve a local web dashboard of one or more runs (archive tree, node diffs, outcomes, cost; live).",
                    "dgm ui archive/quickstart --port 8765   (then open http://127.0.0.1:8765)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or run ids under ./archive")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default loopback only)")


def _ui(args) -> int:
    import uvicorn

    from dgm.ui.app import create_app

    try:
        app = create_app(args.runs)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"dgm dashboard on http://{args.host}:{args.port}  (Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
