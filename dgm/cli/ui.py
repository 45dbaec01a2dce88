"""`dgm ui RUN [RUN2 ...]`: serve the local dashboard (loopback by default; read-only but for approval
decisions, which need the token printed at start)."""

from __future__ import annotations

import secrets
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

    token = secrets.token_urlsafe(16)  # approve/reject need it: only whoever sees this terminal can decide
    try:
        app = create_app(args.runs, write_token=token)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"dgm dashboard on http://{args.host}:{args.port}/?token={token}  (Ctrl-C to stop)", flush=True)
    print(f"write token (approval decisions): {token}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
