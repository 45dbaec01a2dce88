"""Shared by the dashboard tests: a real dashboard server on loopback and headless Chromium settings."""

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from dgm.ui.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NEEDS_CHROMIUM = "needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard(run_dirs, write_token: str | None = None):
    """Serve the dashboard for these runs on 127.0.0.1 (writes with `write_token`); yields its base URL."""
    port = _free_port()
    app = create_app([str(r) for r in run_dirs], write_token=write_token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                          log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


@contextmanager
def dashboard_page(url: str, query: str = ""):
    """Headless Chromium showing the dashboard at `url` (with `query`, e.g. "?token=..."); yields the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/" + query)
            yield page
        finally:
            browser.close()


def open_node(page, node_id: str, timeout_ms: int) -> None:
    """Click a node in the lineage tree and wait until its task outcomes are shown."""
    page.wait_for_selector(f'#tree [data-node="{node_id}"]', timeout=timeout_ms)
    page.click(f'#tree [data-node="{node_id}"]')
    page.wait_for_selector("#outcomes tr:nth-child(2)", timeout=timeout_ms)
