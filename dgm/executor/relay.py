"""A job's road to the LLM gateway from a worker machine.

Sandboxes reach the gateway only through a Unix socket bound into them. On a worker the gateway is
on another machine, so each job opens a Unix socket of its own and pipes every connection to the
driver's gateway over TCP. The relay holds no key: agents present their per-attempt token, which
the gateway checks as it does locally, and the token dies with the attempt.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)  # pass the end of a request/response on
        except OSError:
            pass


def _serve_connection(client: socket.socket, address: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(address, timeout=30)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


@contextmanager
def unix_relay(address: tuple[str, int]) -> Iterator[Path]:
    """A Unix socket path whose connections reach `address` (the gateway's host, port)."""
    directory = tempfile.mkdtemp(prefix="dgm-relay-")  # short: socket paths are limited to 108 bytes
    path = Path(directory) / "llm.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o666)  # a sandbox may run the agent under another uid; the token is the access control
    server.listen(64)

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:  # closed: the job is over
                return
            threading.Thread(target=_serve_connection, args=(client, address), daemon=True).start()

    threading.Thread(target=accept, name="dgm-llm-relay", daemon=True).start()
    try:
        yield path
    finally:
        try:
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        except OSError:
            pass
        server.close()
        shutil.rmtree(directory, ignore_errors=True)
